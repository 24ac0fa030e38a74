"""Action worker benchmark on the embedded stack: segment changes in, coupons and alerts out.

N segment changes of N customers on 8 partitions, as the segmenter emits them (stream time now):
40 % enter churn_risk (a win-back coupon each), 30 % enter high_value (a senior-manager alert, routed
by region, least loaded), 30 % enter mid_value (no action). One action worker, from ready to every
offset of its group committed: changes/s and grants/s, with the ledger's changelog, Redis records
and the broker's acknowledgement of every grant on.

Run with ``make bench`` (or ``python -m bench.actions --changes 20000``). Figures go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.cpu import CpuMeter, rss_mib
from bench.stream import Bench, embedded_stack, say
from schemas.outputs import SegmentChange
from streams.kafka.lag import group_lag
from streams.kafka.reading import true_ends
from streams.kafka.topics import Record
from streams.names import Names
from streams.settings import Settings
from streams.stack.processes import spawn_worker, wait_ready

REGIONS = ("north", "east", "south", "west")


def changes(names: Names, n: int) -> list[Record]:
    now = datetime.now(UTC)
    out: list[Record] = []
    for i in range(n):
        cid, roll = f"A{i:07d}", i % 10
        after = "churn_risk" if roll < 4 else "high_value" if roll < 7 else "mid_value"
        doc = SegmentChange(
            change_id=f"bench-{i}", customer_id=cid, dimension="value", **{"from": "low_value", "to": after},
            ruleset_id="retail-value", ruleset_version=1, cause="event", condition="-", metrics={},
            stream_time=now, profile={"profile.region": REGIONS[i % 4]})
        out.append((names.segment_changes, cid.encode(), doc.model_dump_json(by_alias=True).encode(), None))
    return out


async def caught_up(settings: Settings, group: str, timeout_s: float = 3600) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(lag.lag for lag in await group_lag(settings, only=group)) > 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"the action worker did not catch up in {timeout_s:.0f}s")
        await asyncio.sleep(0.25)


async def granted(settings: Settings, names: Names) -> tuple[int, int]:
    ends = await true_ends(settings, [names.coupons, names.alerts])
    return (sum(v for tp, v in ends.items() if tp.topic == names.coupons),
            sum(v for tp, v in ends.items() if tp.topic == names.alerts))


def run_pass(bench: Bench, settings: Settings, env: dict[str, str], n: int, label: str) -> float:
    names = Names(settings.topic_prefix)
    worker = spawn_worker(settings, env, role="actions")
    bench.processes.append(worker)
    wait_ready(Path(settings.data_dir), worker, timeout_s=300, role="actions")
    t0 = time.perf_counter()
    with CpuMeter({"action worker": worker.pid, **bench.stack}) as meter:
        asyncio.run(caught_up(settings, names.actions_app_id))
    elapsed = time.perf_counter() - t0
    coupons, alerts = asyncio.run(granted(settings, names))
    say(f"{label}".ljust(44) + f"{n / elapsed:>9,.0f} changes/s  ({elapsed:.1f}s; coupons {coupons:,}, "
        f"alerts {alerts:,} on the topics)")
    cpu_us = meter.shares.get("action worker", 0.0) * elapsed / n * 1e6
    say(f"  action worker CPU per change {cpu_us:,.0f} µs, peak RSS {rss_mib(worker.pid, 'VmHWM'):,.0f} MiB; "
        f"{meter.line()}")
    bench.end(worker)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=20_000)
    args = parser.parse_args()
    with embedded_stack("segmenter-bench-actions-") as bench:
        say(f"bench actions: {args.changes:,} segment changes, 8 partitions, retail rules' actions "
            f"(files in {bench.root})")
        env = bench.env("act.", "actions")
        settings = bench.settings(env)
        names = Names(settings.topic_prefix)
        took = asyncio.run(bench.prepare(settings, iter(changes(names, args.changes))))
        say(f"  produced the changes in {took:.1f}s")
        elapsed = run_pass(bench, settings, env, args.changes, "action worker, one")
        grants = sum(asyncio.run(granted(settings, names)))
        say(f"  grants/s                                  {grants / elapsed:>9,.0f}  (each: produce + broker ack, "
            "Redis record, ledger write)")

if __name__ == "__main__":
    main()
