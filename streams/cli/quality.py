"""``segmenter quality``: how far the data can be trusted before the classes are (数据清洗): customers without a
profile, each profile field missing how often, customers with no purchase or interaction in the long window (one
pass over the read model), every record refused so far, by topic and reason (the dead-letter topic), and the
records the workers left out without refusing them (repeated event ids, events older than every window)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from typing import Any

import orjson

from streams.cli.common import load_settings
from streams.text import clip, pad

LEFT_OUT = {"duplicate": "repeated event ids (counted once)", "too_old": "older than every window",
            "erased_ignored": "of erased customers", "wrong_partition": "on the wrong partition (rerouted)"}


def left_out(counters: dict[str, dict[str, int]]) -> dict[str, int]:
    """What the running workers left out since each started (their published counters), summed."""
    return {name: sum(c.get(name, 0) for c in counters.values()) for name in LEFT_OUT}


def dead_letters(settings: Any) -> Counter[tuple[str, str, str]]:
    """(source topic, reason, error class) -> how many records the workers refused."""
    from schemas.outputs import DeadLetter
    from streams.kafka.reading import read_topic
    from streams.names import Names

    out: Counter[tuple[str, str, str]] = Counter()
    for _, value in asyncio.run(read_topic(settings, Names(settings.topic_prefix).dead_letters)):
        if value is None:
            continue
        try:
            letter = DeadLetter.model_validate_json(value)
        except ValueError:
            out["?", "unreadable", "?"] += 1
            continue
        out[letter.source_topic, letter.reason, letter.error_class] += 1
    return out


def cmd_quality(args: argparse.Namespace) -> int:
    from streams.cli.report import quality_doc, quality_table, scan_all
    from streams.readmodel.reader import ReadModel

    settings = load_settings()
    model = ReadModel.of(settings)
    found = scan_all(settings, model, args.quiet)
    letters = dead_letters(settings)
    counters = model.counters()
    skipped = left_out(counters)
    if args.format == "json":
        print(orjson.dumps({**quality_doc(found), "dead_letters": [
            {"topic": t, "reason": r, "error_class": e, "records": n} for (t, r, e), n in sorted(letters.items())],
            "left_out": {**skipped, "workers": len(counters)},
        }).decode())
        return 0
    print(quality_table(found))
    print(f"\nrecords refused (dead letters), {sum(letters.values()):,}:" if letters else
          "\nrecords refused (dead letters): none")
    for (topic, reason, error), n in sorted(letters.items(), key=lambda item: -item[1]):
        print(f"  {pad(topic, 34)} {pad(reason, 16)} {pad(error, 24)} {n:>10,}")
    if letters:
        print(f"  (each with its bytes and reason on {clip(settings.topic_prefix)}dead-letters)", file=sys.stdout)
    print(f"\nrecords left out by the {len(counters)} running worker(s), since each started:")
    for name, what in LEFT_OUT.items():
        print(f"  {pad(what, 40)} {skipped[name]:>10,}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("quality", help="the data's completeness: missing profiles and fields, customers without "
                                       "purchases or interactions, refused records by reason")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_quality)
