"""``segmenter demo run`` (what ``make run`` does): the whole product on the embedded stack."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from streams.demo import DemoSpec, generate
from streams.names import Names
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples" / "rules" / "retail-value.yaml"


async def live(settings: Settings, customers: int, seconds: float, rate: float) -> None:
    """Produce purchases 'now' for random customers and print the segment changes they cause."""
    from streams.kafka_ops import producer, tail  # noqa: PLC0415

    names = Names(settings.topic_prefix)
    consumer = await tail(settings, names.segment_changes)
    prod = producer(settings)
    await prod.start()
    rng = random.Random(1)
    shown = sent = 0
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            for _ in range(max(1, int(rate / 10))):
                cid = f"C{rng.randrange(customers):07d}"
                doc = {"event_id": f"live-{time.time_ns()}-{sent}", "customer_id": cid,
                       "occurred_at": datetime.now(UTC).isoformat(), "amount": f"{rng.uniform(200, 4000):.2f}",
                       "order_id": f"live-o{sent}"}
                await prod.send(names.transactions, key=cid.encode(), value=orjson.dumps(doc))
                sent += 1
            for messages in (await consumer.getmany(timeout_ms=100)).values():
                for m in messages:
                    change = orjson.loads(m.value)
                    shown += 1
                    if shown <= 15:
                        print(f"  {change['customer_id']} {change['dimension']}: {change['from'] or '∅'} -> "
                              f"{change['to']}  ({change['cause']}: {change['condition']})")
        print(f"live: {sent} purchases sent, {shown} segment changes seen in {seconds:.0f}s")
    finally:
        await prod.stop()
        await consumer.stop()


def run(args: argparse.Namespace) -> int:
    from streams.cli import main  # noqa: PLC0415
    from streams.cli_stream import _settings, cmd_down, cmd_up  # noqa: PLC0415

    settings = _settings()
    if cmd_up(argparse.Namespace(detach=True)) != 0:
        return 1
    try:
        demo_dir = Path(settings.data_dir) / "demo"
        end = datetime.now(UTC) - timedelta(minutes=5)
        paths = generate(DemoSpec(customers=args.customers, end=end), demo_dir)
        steps = [["rules", "apply", str(RULES)]]
        steps += [["import", kind, str(paths[kind]), "--quiet"] for kind in ("profiles", "transactions",
                                                                               "interactions")]
        steps += [["wait", "--timeout", "600"], ["report"]]
        for step in steps:
            print(f"\n$ segmenter {' '.join(step)}")
            if main(step) != 0:
                return 1
        print(f"\nlive purchases for {args.live_seconds:.0f}s; segment changes as they arrive:")
        asyncio.run(live(settings, args.customers, args.live_seconds, rate=200))
        for step in (["wait", "--timeout", "120"], ["report"], ["customer", "C0000001"]):
            print(f"\n$ segmenter {' '.join(step)}")
            main(step)
    finally:
        if not args.keep:
            print()
            cmd_down(argparse.Namespace())
    if args.keep:
        print("\nthe stack is still running: try `segmenter export | head`, then `segmenter down`")
    return 0
