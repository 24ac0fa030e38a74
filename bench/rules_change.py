"""A rules change at scale: ``rules apply`` of a ruleset that moves every stored customer, on the embedded stack.

C customers (one purchase each, ``bench.stream``'s ``one_each``) are streamed into one worker under the retail
value rules (v1: all low value); an action worker runs beside it. Then version 2 is applied, which adds a segment
every one-purchase customer enters (``first_timer``) with a coupon on entering: every customer moves and earns
one grant. Timed from the apply until the last of the C segment changes is on its topic (every partition has
re-evaluated all its customers before its changes go out), and until the last of the C coupons is on its topic;
each process' share of the CPU until then, and the worker's flushes meanwhile.

On a machine of few cores the action worker, granting beside the worker, takes CPU the worker's re-evaluation
would use; ``--actions after`` stops it at the apply and starts it again once the last change is out, which shows
the worker's own time (coupons then take longer: nothing is granted until the changes are all out).

    python -m bench.rules_change --customers 1000000     # make bench runs it at 1,000,000
    python -m bench.rules_change --customers 1000000 --actions after
    python -m bench.rules_change --customers 1000000 --actions none    # the change alone: no coupons' phase

Figures go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from bench.cpu import CpuMeter, rss_mib
from bench.stream import RULES, Bench, embedded_stack, flush_line, one_each, say, worker_counters
from segmenter.rules import load_ruleset
from streams.cli.ops import wait_caught_up
from streams.kafka.control import apply_rules
from streams.kafka.reading import true_ends
from streams.kafka.security import kafka_options
from streams.kafka.topics import started
from streams.names import Names
from streams.settings import Settings
from streams.stack.processes import spawn_worker, wait_ready

FIRST_TIMER = """      - name: first_timer
        when: purchases_12m == 1
"""
COUPON = """  - id: welcome_coupon
    enter: value.first_timer
    coupon: {template: WELCOME10, percent: 10, valid_for: 30d}
"""


WHEN = {"beside": "beside it", "after": "after the last change", "none": "stopped at the apply"}


def version_two() -> str:
    """retail-value v2: first-timers (one purchase in 12 months) come before the other tiers and get a coupon."""
    text = RULES.replace("version: 1", "version: 2")
    text = text.replace("      - name: churn_risk\n", FIRST_TIMER + "      - name: churn_risk\n", 1)
    return text.replace("actions:\n", "actions:\n" + COUPON, 1)


async def arrivals(settings: Settings, topics: dict[str, int], start: float, timeout_s: float,
                   on_reached: Callable[[str], None] = lambda topic: None) -> dict[str, float]:
    """Seconds from ``start`` (``time.perf_counter``) until each topic got its expected count of new records,
    counted from its end now (``on_reached`` is told each topic as it gets there).

    Counted by the topics' ends, not by reading their records: each partition's high watermark, which a fetch of its
    last record returns (the embedded broker's ListOffsets reports a batch's base; ``streams.kafka.reading``). A
    consumer of every change took 4-11 % of a core of the 2-core machine the worker and Redis share, this 2-3 %
    (``docs/throughput.md``)."""
    begin = await true_ends(settings, topics)
    probe = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False, fetch_max_wait_ms=50)
    await started(probe)
    ends = dict(begin)
    reached: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s

    def arrived(topic: str) -> int:
        return sum(end - begin[tp] for tp, end in ends.items() if tp.topic == topic)

    try:
        probe.assign(list(ends))
        while len(reached) < len(topics):
            if time.monotonic() > deadline:
                seen = {topic: arrived(topic) for topic in topics}
                raise SystemExit(f"not every record arrived within {timeout_s:.0f}s: {seen} of {topics}")
            for tp, end in ends.items():  # the last record known: its fetch brings the partition's high watermark
                probe.seek(tp, max(end - 1, 0))
            await probe.getmany(timeout_ms=100, max_records=1)
            ends = {tp: max(end, probe.highwater(tp) or 0) for tp, end in ends.items()}
            for topic, expected in topics.items():
                if topic not in reached and arrived(topic) >= expected:
                    reached[topic] = time.perf_counter() - start
                    on_reached(topic)
            await asyncio.sleep(0.05)
    finally:
        await probe.stop()
    return reached


def report(args: argparse.Namespace, names: Names, seen: dict[str, float], cpu: dict[str, str]) -> None:
    """The times from the apply, and each process' CPU until the last change and coupon."""
    say(f"  rules apply -> the last of {args.customers:,} segment changes on the topic".ljust(78)
        + f"{seen[names.segment_changes]:>8.1f} s")
    if names.coupons in seen:
        say(f"  rules apply -> the last of {args.customers:,} coupons on the topic".ljust(78)
            + f"{seen[names.coupons]:>8.1f} s  ({args.customers / seen[names.coupons]:,.0f} grants/s)")
    if args.actions == "after":
        granting = seen[names.coupons] - seen[names.segment_changes]
        say(f"    (the action worker started after the last change: {granting:.1f} s from then, "
            f"{args.customers / granting:,.0f} grants/s, its start included)")
    for what, line in cpu.items():
        unmetered = " (the action worker, started after the last change, not counted)" if (
            args.actions == "after" and what == "coupon") else ""
        say(f"  CPU until the last {what}: {line}{unmetered}")


def stream_in(bench: Bench, settings: Settings, env: dict[str, str], args: argparse.Namespace
              ) -> subprocess.Popen[bytes]:
    """The customers produced and streamed into a worker of their own (returned, caught up)."""
    took = asyncio.run(bench.prepare(settings, one_each(Names(settings.topic_prefix), args.customers)))
    say(f"  produced the input in {took:.1f}s")
    worker = bench.worker(settings, env)
    wait_ready(Path(settings.data_dir), worker, timeout_s=300)
    t0 = time.perf_counter()
    asyncio.run(wait_caught_up(settings, timeout_s=args.timeout, alive=bench.alive))
    say(f"  streamed in: {args.customers / (time.perf_counter() - t0):,.0f} events/s")
    return worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--actions", choices=("beside", "after", "none"), default="beside",
                        help="the action worker grants beside the worker while it re-evaluates (the default), or is "
                             "stopped at the apply and started again after the last change (the worker's own time), "
                             "or stopped at the apply and not started again (the worker's own time, no coupons timed)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    with embedded_stack("segmenter-bench-rules-") as bench:
        env = {**bench.env("rc.", "rc"), "SEGMENTER_ACTIONS_REPLAY_HORIZON": "0d"}
        settings = bench.settings(env)
        names = Names(settings.topic_prefix)
        say(f"bench rules change: {args.customers:,} customers (one purchase each), 8 partitions, one worker and "
            f"one action worker {WHEN[args.actions]} "
            f"(files in {bench.root})")
        worker = stream_in(bench, settings, env, args)

        def action_worker() -> subprocess.Popen[bytes]:
            process = spawn_worker(settings, env, role="actions")
            bench.processes.append(process)
            wait_ready(Path(settings.data_dir), process, timeout_s=300, role="actions")
            return process

        actions = action_worker()
        asyncio.run(wait_caught_up(settings, timeout_s=args.timeout, actions=True, alive=bench.alive))
        v2 = load_ruleset(version_two(), "retail-value-v2.yaml", settings.money_scale)
        expected = {names.segment_changes: args.customers,
                    **({names.coupons: args.customers} if args.actions != "none" else {})}
        if args.actions != "beside":
            bench.end(actions)  # its group's offsets are committed: the one started later goes on from there

        async def change() -> dict[str, float]:
            start = time.perf_counter()
            watch = asyncio.create_task(arrivals(settings, expected, start, args.timeout,
                                                 on_reached=lambda topic: marks.setdefault(topic, meter.now())))
            await asyncio.sleep(1.0)  # the consumers are at the topics' ends before anything moves
            start_apply = time.perf_counter()
            await apply_rules(settings, v2, "retail-value-v2.yaml")
            if args.actions == "after":
                while names.segment_changes not in marks:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(lambda: started.append(action_worker()))
            seen = await watch
            return {t: s - (start_apply - start) for t, s in seen.items()}

        time.sleep(6)  # the worker publishes its counters every 5 s: these are as of the apply
        before = worker_counters(settings, worker.pid)
        pids = {"worker": worker.pid, **({"action worker": actions.pid} if args.actions == "beside" else {}),
                **bench.stack}
        say("  applying version 2 (first-timers, a coupon on entering)")
        marks: dict[str, dict[str, float]] = {}  # topic -> each process' CPU share until it got all its records
        started: list[subprocess.Popen[bytes]] = []  # the action worker started after the last change
        with CpuMeter(pids) as meter:
            seen = asyncio.run(change())
        actions = started[0] if started else actions
        report(args, names, seen, {what: meter.line(marks.get(topic)) for topic, what in
                                   ((names.segment_changes, "change"), (names.coupons, "coupon")) if topic in expected})
        asyncio.run(wait_caught_up(settings, timeout_s=args.timeout, actions=args.actions != "none",
                                   alive=bench.alive))
        granted = "" if args.actions == "none" else f", action worker {rss_mib(actions.pid, 'VmHWM'):,.0f} MiB"
        say(f"  peak RSS: worker {rss_mib(worker.pid, 'VmHWM'):,.0f} MiB{granted}")
        bench.end(worker)
        say(f"  the rules change's {flush_line(settings, worker.pid, since=before)}")
        say(f"  the whole run's {flush_line(settings, worker.pid)}")
        if args.actions != "none":
            bench.end(actions)


if __name__ == "__main__":
    main()
