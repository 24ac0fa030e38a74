"""``segmenter`` commands for the streaming system: the embedded stack, workers, topics, the read model."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from streams.cli.common import CliError, load_rules, load_settings, who
from streams.logs import logging_config
from streams.text import clip


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from streams.api.app import create_api

    settings = load_settings()
    uvicorn.run(create_api(settings), host=settings.api_host, port=settings.api_port, log_level=args.loglevel,
                access_log=False, log_config=logging_config(args.loglevel, settings.log_level, settings.log_format))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker.app import run_worker

    run_worker(load_settings(), loglevel=args.loglevel)
    return 0


def cmd_actions(args: argparse.Namespace) -> int:
    from streams.actions.app import run_actions

    settings = load_settings()
    if args.no_actions:
        settings = settings.model_copy(update={"actions_enabled": False})
    run_actions(settings, loglevel=args.loglevel)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from streams.cli.ops import import_file

    produced, bad, repeated = asyncio.run(import_file(load_settings(), args.kind, args.file, args.quiet,
                                                      by_content=args.dedupe == "content"))
    print(f"imported {produced:,} {args.kind} from {args.file}; bad rows: {bad:,}"
          + (f"; rows repeating an earlier row's content: {repeated:,} (kept as events of their own)" if repeated
             else ""))
    if bad:
        print(f"error: {bad:,} bad rows were skipped (see above)", file=sys.stderr)
        return 1
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    from streams.cli.ops import wait_caught_up

    asyncio.run(wait_caught_up(load_settings(), args.timeout, actions=args.actions))
    print("caught up: every produced record is consumed and committed"
          + (" (workers and action workers)" if args.actions else ""))
    return 0


def cmd_tick(args: argparse.Namespace) -> int:
    from segmenter.rows import parse_time
    from streams.kafka.control import send_control

    settings = load_settings()
    when = parse_time(args.to, settings.policy().timezone, "--to")
    asyncio.run(send_control(settings, {"type": "tick", "to": when.isoformat()}))
    print(f"stream time moves to {when.isoformat()} on {settings.partitions} partitions")
    return 0


def cmd_rules_apply(args: argparse.Namespace) -> int:
    from streams.kafka.control import apply_rules

    settings = load_settings()
    ruleset = load_rules(args.file, settings.money_scale)
    asyncio.run(apply_rules(settings, ruleset, str(args.file), who(args.author), args.message))
    print(f"published {ruleset.id} v{ruleset.version}; workers adopt it and reclassify every customer")
    return 0


def cmd_rules_preview(args: argparse.Namespace) -> int:
    """The transition matrix a candidate ruleset would cause now; nothing is applied or written."""
    from streams.cli import preview

    settings = load_settings()
    candidate = load_rules(args.file, settings.money_scale)
    started = time.monotonic()
    transitions, customers = preview.live(settings, candidate, args.samples, quiet=args.quiet, jobs=args.jobs)
    preview.show(transitions, candidate, customers, settings.money_scale, fmt=args.format)
    print(f"previewed {candidate.id} v{candidate.version} against {customers:,} customers in "
          f"{time.monotonic() - started:.1f}s; nothing was applied", file=sys.stderr)
    return 0


def cmd_rules_history(args: argparse.Namespace) -> int:
    from segmenter.rules import load_ruleset
    from segmenter.rules.diff import describe_changes
    from streams.kafka.control import rules_history

    settings = load_settings()
    history = asyncio.run(rules_history(settings, args.id))
    if not history:
        print("no ruleset has been applied yet" if args.id is None else f"no version of {args.id} has been applied")
        return 1
    previous: dict[str, Any] = {}
    for applied in history:
        ruleset = load_ruleset(applied.yaml, applied.source, settings.money_scale)
        print(f"{applied.id} v{applied.version}  {applied.applied_at:%Y-%m-%d %H:%M} UTC  {clip(applied.author)}"
              + (f"  {clip(applied.message, 200)}" if applied.message else ""))
        for line in describe_changes(previous.get(applied.id), ruleset):
            print(f"    {line}")
        previous[applied.id] = ruleset
    return 0


def cmd_rules_rollback(args: argparse.Namespace) -> int:
    """Apply an old version's text again, as a new version: history is never rewritten."""
    from segmenter.rules import load_ruleset
    from streams.kafka.control import apply_rules, rules_history

    settings = load_settings()
    history = asyncio.run(rules_history(settings, args.id))
    old = next((applied for applied in history if applied.version == args.version), None)
    if old is None:
        known = ", ".join(f"v{a.version}" for a in history) or "none"
        raise CliError(f"{args.id} v{args.version} was never applied (applied versions: {known})")
    new_version = max(a.version for a in history) + 1
    text, count = re.subn(r"(?m)^version:[ \t]*\d+[ \t]*$", f"version: {new_version}", old.yaml, count=1)
    if count != 1:
        raise CliError(f"{args.id} v{args.version}: no top-level `version:` line to renumber in its text")
    ruleset = load_ruleset(text, old.source, settings.money_scale)
    message = args.message or f"rollback to v{args.version}"
    asyncio.run(apply_rules(settings, ruleset, old.source, who(args.author), message))
    print(f"published {ruleset.id} v{new_version} (the text of v{args.version}); workers adopt it and reclassify "
          "every customer")
    return 0


def cmd_rules_show(args: argparse.Namespace) -> int:
    """The rulesets in force: a line each (id, version, dimensions), or with ``--text`` their text."""
    from segmenter.errors import SegmenterError
    from segmenter.rules import load_ruleset
    from streams.kafka.control import latest_rules

    settings = load_settings()
    found = asyncio.run(latest_rules(settings))
    if not found:
        print("no ruleset is in force")
        return 1
    for ruleset_id, text in sorted(found.items()):
        if args.text:
            print(f"# {ruleset_id}, in force\n{text.rstrip()}\n")
            continue
        try:
            ruleset = load_ruleset(text, "rules topic", settings.money_scale)
        except SegmenterError as exc:
            print(f"{clip(ruleset_id)}: does not load here ({clip(exc, 200)})")
            continue
        print(f"{ruleset.id} v{ruleset.version}: " + ", ".join(
            d.name + (f" ({d.label})" if d.label else "") for d in ruleset.dimensions)
              + (f"; {len(ruleset.actions)} action(s)" if ruleset.actions else ""))
    return 0


def cmd_rules_retire(args: argparse.Namespace) -> int:
    from streams.kafka.control import retire_rules

    left = asyncio.run(retire_rules(load_settings(), args.id))  # refused in one line when it may not be
    print(f"retired {args.id}: workers take its dimensions off every customer; in force: {', '.join(left)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from streams.cli.ops import export

    out = sys.stdout if args.out is None else args.out.open("w", encoding="utf-8", newline="")
    try:
        count = export(load_settings(), out, args.format, args.dimension, args.segment, tag=args.tag)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"exported {count:,} customers", file=sys.stderr)
    return 0


def cmd_customer(args: argparse.Namespace) -> int:
    """A customer's story: per dimension the segment, why, and why not each earlier segment; what the next due
    day will do if nothing else happens; the metrics."""
    from streams.cli.story import ruleset_of
    from streams.readmodel.reader import ReadModel
    from streams.readmodel.story import render, story

    settings = load_settings()
    view = ReadModel.of(settings).customer(args.id)
    if view is None or view.record is None:
        print(f"error: customer {args.id!r} is not known", file=sys.stderr)
        return 1
    record = view.record
    ruleset = ruleset_of(settings, record.ruleset) if record.ruleset else None
    doc = story(settings.policy(), view, record, view.day, ruleset)
    doc["recent_changes"] = ReadModel.of(settings).recent_changes(args.id)
    if args.json:
        print(orjson.dumps(doc, default=str).decode())
        return 0
    print("\n".join(render(doc)))
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streams.kafka.topics import create_topics

    created = asyncio.run(create_topics(load_settings()))
    print(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else " (all existed)"))
    return 0


def cmd_lag(args: argparse.Namespace) -> int:
    from streams.kafka.lag import group_lag
    from streams.readmodel.reader import ReadModel

    settings = load_settings()
    lags = asyncio.run(group_lag(settings))
    print(f"{'group':<24} {'topic':<34} {'part':>4} {'end':>10} {'committed':>10} {'lag':>8}")
    for lag in lags:
        print(f"{lag.group:<24} {lag.tp.topic:<34} {lag.tp.partition:>4} {lag.end:>10} {lag.committed:>10} "
              f"{lag.lag:>8}")
    for worker, counters in ReadModel.of(settings).counters().items():
        print(f"worker {worker}: " + ", ".join(f"{k}={v:,}" for k, v in sorted(counters.items())), file=sys.stderr)
    return 0


def _loglevel(p: argparse.ArgumentParser) -> None:
    p.add_argument("--loglevel", default=os.environ.get("SEGMENTER_LOGLEVEL", "warn"),
                   choices=("crit", "error", "warn", "info", "debug"), help="default: $SEGMENTER_LOGLEVEL or warn")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser], rules: argparse._SubParsersAction[
        argparse.ArgumentParser]) -> None:
    p = sub.add_parser("api", help="serve the HTTP API (SEGMENTER_API_HOST:SEGMENTER_API_PORT)")
    p.add_argument("--loglevel", default="warning", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=cmd_api)
    p = sub.add_parser("worker", help="run one worker against the configured Kafka and Redis")
    _loglevel(p)
    p.set_defaults(func=cmd_worker)
    p = sub.add_parser("actions", help="run one action worker: segment changes -> coupons and alerts")
    p.add_argument("--no-actions", action="store_true",
                   help="record transitions but grant nothing (backfills); counted as 'replay'")
    _loglevel(p)
    p.set_defaults(func=cmd_actions)
    p = sub.add_parser("import", help="produce a CSV export to its topic")
    p.add_argument("kind", choices=("transactions", "interactions", "profiles"))
    p.add_argument("file", type=Path)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--dedupe", choices=("id", "content"), default="id",
                   help="id (default): a row's event_id, derived from its content where it has none; content: "
                   "always from its content (a source whose ids change between exports), so a row exported "
                   "twice counts once")
    p.set_defaults(func=cmd_import)
    p = sub.add_parser("wait", help="return once the worker group has consumed everything produced")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--actions", action="store_true", help="also wait for the action workers' group")
    p.set_defaults(func=cmd_wait)
    p = sub.add_parser("tick", help="move stream time forward on every partition")
    p.add_argument("--to", required=True, help="date (start of that day) or ISO time")
    p.set_defaults(func=cmd_tick)
    _register_rules(rules)
    p = rules.add_parser("show", help="the rulesets in force: id, version, dimensions")
    p.add_argument("--text", action="store_true", help="print each one's text")
    p.set_defaults(func=cmd_rules_show)
    p = rules.add_parser("retire", help="take a ruleset out of force: its dimensions leave every customer")
    p.add_argument("id")
    p.set_defaults(func=cmd_rules_retire)
    p = sub.add_parser("export", help="every known customer: segments and metrics")
    p.add_argument("--dimension")
    p.add_argument("--segment")
    p.add_argument("--tag", help="only the customers with this tag")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("customer", help="one customer's story: segments, why and why not, what is due, metrics")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="the same as one JSON document, for tools")
    p.set_defaults(func=cmd_customer)
    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(dest="topics_cmd", required=True)
    topics.add_parser("create", help="create the missing topics with their partition counts").set_defaults(
        func=cmd_topics_create)
    sub.add_parser("lag", help="per topic-partition: end, committed offset, lag").set_defaults(func=cmd_lag)


def _register_rules(rules: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = rules.add_parser("apply", help="validate and publish a ruleset; workers adopt it")
    p.add_argument("file", type=Path)
    p.add_argument("--author", help="who applies it (default: $USER)")
    p.add_argument("--message", default="", help="why, for `rules history`")
    p.set_defaults(func=cmd_rules_apply)
    p = rules.add_parser("preview", help="what a candidate ruleset would move now (from -> to), applying nothing")
    p.add_argument("file", type=Path)
    p.add_argument("--samples", type=int, default=3, help="sample customers per moving cell")
    p.add_argument("--jobs", type=int, help="processes evaluating partitions side by side (default: one per core)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_rules_preview)
    p = rules.add_parser("history", help="every version applied: when, who, why, and what changed")
    p.add_argument("id", nargs="?", help="one ruleset id (default: all)")
    p.set_defaults(func=cmd_rules_history)
    p = rules.add_parser("rollback", help="apply an old version's text again, as a new version")
    p.add_argument("id")
    p.add_argument("version", type=int)
    p.add_argument("--author", help="who rolls back (default: $USER)")
    p.add_argument("--message", default="", help="why (default: 'rollback to vN')")
    p.set_defaults(func=cmd_rules_rollback)
