"""End-to-end benchmark of one worker on the embedded stack (Tansu + Redis), printed to stdout.

1. throughput: N synthetic transactions of C customers (8 partitions) are produced first, then one
   worker starts; events/s = N / (time from worker ready to every offset committed);
2. latency: purchases of new customers at a low rate; event produce -> segment-change received;
3. rules: a new ruleset version is published; time until every customer is re-evaluated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from segmenter.rules import load_ruleset
from streams.cli_stream import spawn_worker, wait_ready
from streams.embedded import free_port, start_broker, start_redis, stop
from streams.kafka_ops import Record, create_topics, produce_records, producer, tail
from streams.names import Names
from streams.ops import apply_rules, wait_caught_up
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RULES = (ROOT / "examples/rules/retail-value.yaml").read_text()


async def produce_history(settings: Settings, customers: int, events: int) -> float:
    names, rng = Names(settings.topic_prefix), random.Random(3)
    start = datetime(2025, 7, 1, tzinfo=UTC)

    def records() -> Iterator[Record]:
        for n in range(events):
            cid = f"B{rng.randrange(customers):07d}"
            when = start + timedelta(seconds=n * 365 * 86400 / events)
            doc = {"event_id": f"h{n}", "customer_id": cid, "occurred_at": when.isoformat(),
                   "kind": "refund" if rng.random() < 0.03 else "purchase",
                   "amount": f"{rng.uniform(10, 3000):.2f}", "order_id": f"o{n}"}
            yield names.transactions, cid.encode(), orjson.dumps(doc), None

    t0 = time.perf_counter()
    await produce_records(settings, records())
    return time.perf_counter() - t0


async def latency(settings: Settings, probes: int, rate: float) -> list[float]:
    names = Names(settings.topic_prefix)
    consumer = await tail(settings, names.segment_changes)
    prod = producer(settings)
    await prod.start()
    sent: dict[str, float] = {}
    seen: list[float] = []

    async def drain() -> None:
        for messages in (await consumer.getmany(timeout_ms=5)).values():
            arrived = time.perf_counter()
            for m in messages:
                eid = orjson.loads(m.value).get("event_id")
                if eid in sent:
                    seen.append(arrived - sent.pop(eid))

    try:
        when = datetime(2026, 6, 30, 12, tzinfo=UTC)
        for i in range(probes):
            cid = f"L{i:07d}"
            doc = {"event_id": f"probe-{i}", "customer_id": cid, "occurred_at": when.isoformat(),
                   "amount": "100.00", "order_id": f"probe-{i}"}
            sent[doc["event_id"]] = time.perf_counter()
            await prod.send_and_wait(names.transactions, key=cid.encode(), value=orjson.dumps(doc))
            deadline = time.perf_counter() + 1 / rate
            while time.perf_counter() < deadline:
                await drain()
        deadline = time.perf_counter() + 10
        while sent and time.perf_counter() < deadline:
            await drain()
    finally:
        await prod.stop()
        await consumer.stop()
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=int(os.environ.get("BENCH_CUSTOMERS", "200000")))
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "1000000")))
    parser.add_argument("--probes", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="segmenter-bench-"))
    bport, rport = free_port(), free_port()
    broker, redis_proc = start_broker(bport, root / "logs"), start_redis(rport, root / "redis")
    env = {"SEGMENTER_KAFKA_BOOTSTRAP": f"127.0.0.1:{bport}", "SEGMENTER_REDIS_URL": f"redis://127.0.0.1:{rport}/0",
           "SEGMENTER_DATA_DIR": str(root / "worker"), "SEGMENTER_CLOCK": "event", "SEGMENTER_PARTITIONS": "8",
           "SEGMENTER_CONSISTENCY_CHECK": "false", "SEGMENTER_WEB_PORT": str(free_port())}
    os.environ.update(env)
    settings = Settings()
    worker = None
    try:
        asyncio.run(create_topics(settings))
        asyncio.run(apply_rules(settings, load_ruleset(RULES), "retail-value.yaml"))
        produced_s = asyncio.run(produce_history(settings, args.customers, args.events))
        print(f"stream: produced {args.events:,} events of {args.customers:,} customers in {produced_s:.1f}s")
        worker = spawn_worker(settings, env)
        wait_ready(Path(settings.data_dir), worker, timeout_s=300)
        t0 = time.perf_counter()
        asyncio.run(wait_caught_up(settings, timeout_s=7200))
        elapsed = time.perf_counter() - t0
        print(f"stream: one worker, {args.events:,} events   {args.events / elapsed:>10,.0f} events/s "
              f"({elapsed:.1f}s, durable state + changelog + changes + Redis)")
        lat = sorted(asyncio.run(latency(settings, args.probes, rate=50)))
        if lat:
            p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"stream: event -> segment-change latency  p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms "
                  f"({len(lat)} of {args.probes} probes at 50/s)")
        v2 = load_ruleset(RULES.replace("version: 1", "version: 2").replace(">= 10000", ">= 8000"))
        t0 = time.perf_counter()
        asyncio.run(apply_rules(settings, v2, "retail-value v2"))
        asyncio.run(wait_caught_up(settings, timeout_s=7200))
        print(f"stream: rules apply -> every customer re-evaluated in {time.perf_counter() - t0:.1f}s")
    finally:
        if worker is not None:
            stop(worker.pid)
        stop(redis_proc.pid)
        stop(broker.pid)


if __name__ == "__main__":
    main()
