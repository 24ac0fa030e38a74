"""``segmenter demo run`` (what ``make run`` does): the whole product on the embedded stack; ``demo offline``:
the same data classified without one. Both run their steps as ``segmenter`` command lines."""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from streams.cli.common import load_settings
from streams.cli.demo_data import DemoSpec, generate
from streams.cli.stack_commands import cmd_down, cmd_up
from streams.names import Names
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "rules" / "crm.yaml"  # value and lifecycle, tags, actions
CANDIDATE = ROOT / "examples" / "rules" / "crm-v2.yaml"  # high value from 8,000 instead of 10,000
Command = Callable[[list[str]], int]


async def live(settings: Settings, customers: int, seconds: float, rate: float) -> None:
    """Purchases 'now' for random customers, and a branch's backlog of orders from seven months ago for
    new customers; print the segment changes, coupons and alerts they cause as they arrive."""
    from streams.kafka.reading import tail
    from streams.kafka.topics import producer

    names = Names(settings.topic_prefix)
    feeds = {topic: await tail(settings, topic) for topic in (names.segment_changes, names.coupons, names.alerts)}
    prod = producer(settings)
    await prod.start()
    rng = random.Random(1)
    seen = dict.fromkeys(feeds, 0)
    sent = 0
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            for _ in range(max(1, int(rate / 10))):
                backlog = rng.random() < 0.05
                cid = f"B{sent:07d}" if backlog else f"C{rng.randrange(customers):07d}"
                when = datetime.now(UTC) - (timedelta(days=rng.uniform(200, 240)) if backlog else timedelta())
                doc = {"event_id": f"live-{time.time_ns()}-{sent}", "customer_id": cid,
                       "occurred_at": when.isoformat(), "amount": f"{rng.uniform(200, 4000):.2f}",
                       "order_id": f"live-o{sent}"}
                await prod.send(names.transactions, key=cid.encode(), value=orjson.dumps(doc))
                sent += 1
            for topic, consumer in feeds.items():
                for messages in (await consumer.getmany(timeout_ms=30)).values():
                    for m in messages:
                        seen[topic] += 1
                        if seen[topic] <= 6:
                            print(f"  {_line(topic, names, orjson.loads(m.value))}")
        print(f"live: {sent} purchases sent in {seconds:.0f}s; seen {seen[names.segment_changes]} segment and tag "
              f"changes, "
              f"{seen[names.coupons]} coupons, {seen[names.alerts]} alerts")
    finally:
        await prod.stop()
        for consumer in feeds.values():
            await consumer.stop()


def _line(topic: str, names: Names, doc: dict[str, Any]) -> str:
    if topic == names.coupons:
        return (f"coupon  {doc['code']} for {doc['customer_id']} ({doc['percent'] or doc['value']}"
                f"{'%' if doc['percent'] else ''} off, {doc['action']} on entering {doc['segment']})")
    if topic == names.alerts:
        return f"alert   [{doc['priority']}] to {doc['manager']} ({doc['team']}): {doc['message']}"
    if doc.get("type") == "occasion":
        return f"occasion {doc['customer_id']} {doc['occasion']} on {doc['date']}"
    if doc.get("type") == "tag_change":
        return (f"tag     {doc['customer_id']} {'+' if doc['added'] else '-'}{doc['tag']}  "
                f"({doc['cause']}: {doc['condition']})")
    return (f"change  {doc['customer_id']} {doc['dimension']}: {doc['from'] or '∅'} -> {doc['to']}  "
            f"({doc['cause']}: {doc['condition']})")


def _actions_on(settings: Settings) -> None:
    """Replace the backfill-mode action worker that ``up`` started with one that grants."""
    from streams.stack.embedded import StackInfo, stop
    from streams.stack.processes import EMBEDDED_ENV, spawn_worker, wait_ready

    data_dir = Path(settings.data_dir)
    info = StackInfo.load(data_dir / "stack.json")
    if info is None:
        raise RuntimeError("the stack is not recorded; was it started with `segmenter up`?")
    stop(info.actions_pid)
    (data_dir / "actions.ready").unlink(missing_ok=True)
    worker = spawn_worker(settings, {**EMBEDDED_ENV, "SEGMENTER_ACTIONS_ENABLED": "true"}, role="actions")
    info.actions_pid = worker.pid
    info.save(data_dir / "stack.json")
    wait_ready(data_dir, worker, role="actions")


def run(args: argparse.Namespace, main: Command) -> int:
    """``demo run``; ``main`` runs one ``segmenter`` command line (the steps are shown as commands)."""
    settings = load_settings()
    # A year of history is a backfill: the action worker records it but grants nothing.
    os.environ["SEGMENTER_ACTIONS_ENABLED"] = "false"
    if cmd_up(argparse.Namespace(detach=True, fresh=True, no_workers=False)) != 0:
        return 1
    try:
        demo_dir = Path(settings.data_dir) / "demo"
        end = datetime.now(UTC) - timedelta(minutes=5)
        paths = generate(DemoSpec(customers=args.customers, end=end), demo_dir)
        steps = [["rules", "apply", str(RULES), "--author", "demo", "--message", "value tiers, lifecycle, tags"]]
        steps += [["import", kind, str(paths[kind]), "--quiet"] for kind in ("profiles", "transactions",
                                                                               "interactions")]
        steps += [["wait", "--actions", "--timeout", "600"], ["report"]]
        for step in steps:
            print(f"\n$ segmenter {' '.join(step)}")
            if main(step) != 0:
                return 1
        print("\nhistory is in (its transitions counted as 'replay'); the action worker now grants")
        _actions_on(settings)
        print(f"\nlive purchases for {args.live_seconds:.0f}s; changes, coupons and alerts as they arrive:")
        asyncio.run(live(settings, args.customers, args.live_seconds, rate=200))
        for step in (["wait", "--actions", "--timeout", "120"], ["report"]):
            print(f"\n$ segmenter {' '.join(step)}")
            main(step)
        print("\nthe operator's desk: a manual override, a tag by hand, a candidate ruleset previewed, applied and "
              "rolled back")
        until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
        desk = [["override", "set", "C0000001", "value", "high_value", "--reason", "key account, contract signed",
                 "--by", "demo", "--until", until],
                ["tag", "add", "C0000001", "需求:降本增效", "--reason", "asked for a cost review", "--by", "demo"],
                ["rules", "preview", str(CANDIDATE), "--quiet"],
                ["rules", "apply", str(CANDIDATE), "--author", "demo", "--message", "high value from 8,000"],
                ["wait", "--actions", "--timeout", "120"],
                ["rules", "rollback", "crm", "1", "--author", "demo", "--message", "too many alerts: back to 10,000"],
                ["wait", "--actions", "--timeout", "120"],
                ["rules", "history", "crm"], ["customer", "C0000001"]]
        for step in desk:
            print(f"\n$ segmenter {' '.join(step)}")
            if main(step) != 0:
                return 1
    finally:
        if not args.keep:
            print()
            cmd_down(argparse.Namespace(discard=True))
    if args.keep:
        print("\nthe stack is still running: try `segmenter export | head`, then `segmenter down`")
    return 0


def offline(args: argparse.Namespace, main: Command) -> int:
    """Generate a population, check the retail rules, classify it offline and print a report."""
    rules = RULES
    out_dir = Path(args.dir)
    paths = generate(DemoSpec(customers=args.customers), out_dir)
    print(f"$ segmenter rules check {rules.relative_to(ROOT)}")
    main(["rules", "check", str(rules)])
    result = out_dir / "segments.csv"
    print(f"\n$ segmenter classify --rules ... --as-of 2026-06-30 --out {result}")
    status = main(["classify", "--rules", str(rules), "--transactions", str(paths["transactions"]),
                   "--interactions", str(paths["interactions"]), "--profiles", str(paths["profiles"]),
                   "--as-of", "2026-06-30", "--out", str(result)])
    with result.open() as handle:
        counts = Counter(row["value"] for row in csv.DictReader(handle))
    total = sum(counts.values())
    print("\nsegment        customers  share")
    for name, n in counts.most_common():
        print(f"{name:<14} {n:>9,}  {100 * n / total:5.1f}%")
    return status
