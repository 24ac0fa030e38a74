"""``segmenter quality``: how far the data can be trusted before the classes are (数据清洗): customers without a
profile, each profile field missing how often, customers with no purchase or interaction in the long window (one
pass over the read model), and every record refused so far, by topic and reason (the dead-letter topic)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from typing import Any

import orjson

from streams.cli.common import load_settings
from streams.text import clip, pad


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
    found = scan_all(settings, ReadModel.of(settings), args.quiet)
    letters = dead_letters(settings)
    if args.format == "json":
        print(orjson.dumps({**quality_doc(found), "dead_letters": [
            {"topic": t, "reason": r, "error_class": e, "records": n} for (t, r, e), n in sorted(letters.items())]
        }).decode())
        return 0
    print(quality_table(found))
    print(f"\nrecords refused (dead letters), {sum(letters.values()):,}:" if letters else
          "\nrecords refused (dead letters): none")
    for (topic, reason, error), n in sorted(letters.items(), key=lambda item: -item[1]):
        print(f"  {pad(topic, 34)} {pad(reason, 16)} {pad(error, 24)} {n:>10,}")
    if letters:
        print(f"  (each with its bytes and reason on {clip(settings.topic_prefix)}dead-letters)", file=sys.stdout)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("quality", help="the data's completeness: missing profiles and fields, customers without "
                                       "purchases or interactions, refused records by reason")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_quality)
