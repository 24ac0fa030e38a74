"""End-to-end benchmark on the embedded stack (Tansu + Redis started here), figures on stdout.

The job: N transactions of C customers (Pareto-skewed, a year of history) on 8 partitions, the
retail value rules, a change event on every segment change, durable state with a changelog.

1. naive: the obvious faust design (``bench/naive.py``: one agent, a table write per event), run
   for ``--naive-seconds`` on the same input; events/s from its processed count;
2. segmenter, one worker: events/s = N / (worker ready -> every input offset committed), with the
   changelog, the segment-changes, time-driven wake-ups, de-duplication and Redis on;
3. bytes per customer on disk (the RocksDB customers store, compacted) and per stored record;
4. restart to ready: SIGTERM, start again on the same data dir; ready = a new event's change arrives;
5. latency at half the measured rate: new customers' first purchases (each makes a change) mixed
   with one very active customer; produce -> segment-change received, p50/p99;
6. two workers on a fresh copy of the input: events/s and the ratio to one worker;
7. restart with ``--restart-customers`` customers (one event each) in the state.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import rocksdict
from aiokafka.partitioner import DefaultPartitioner

from segmenter.rules import load_ruleset
from streams import faust_compat
from streams.cli_stream import spawn_worker, wait_ready
from streams.embedded import free_port, start_broker, start_redis, stop
from streams.kafka_ops import Record, create_topics, produce_records, producer, tail, true_ends
from streams.names import Names
from streams.ops import apply_rules, wait_caught_up
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RULES = (ROOT / "examples/rules/retail-value.yaml").read_text()
START = datetime(2025, 7, 1, tzinfo=UTC)


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    def __init__(self, root: Path, bootstrap: str, redis_url: str) -> None:
        self.root, self.bootstrap, self.redis_url = root, bootstrap, redis_url
        self.processes: list[subprocess.Popen[bytes]] = []
        self.rate = 0.0  # one worker's events/s, once measured

    def env(self, prefix: str, data_dir: str) -> dict[str, str]:
        return {"SEGMENTER_KAFKA_BOOTSTRAP": self.bootstrap, "SEGMENTER_REDIS_URL": self.redis_url,
                "SEGMENTER_DATA_DIR": str(self.root / data_dir), "SEGMENTER_CLOCK": "event",
                "SEGMENTER_PARTITIONS": "8", "SEGMENTER_CONSISTENCY_CHECK": "false",
                "SEGMENTER_WEB_PORT": str(free_port()), "SEGMENTER_TOPIC_PREFIX": prefix}

    def settings(self, env: dict[str, str]) -> Settings:
        os.environ.update(env)
        return Settings()

    async def prepare(self, settings: Settings, records: Iterator[Record]) -> float:
        await create_topics(settings)
        await apply_rules(settings, load_ruleset(RULES), "retail-value.yaml")
        t0 = time.perf_counter()
        await produce_records(settings, records)
        return time.perf_counter() - t0

    def worker(self, settings: Settings, env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = spawn_worker(settings, env)
        self.processes.append(process)
        return process

    def alive(self) -> bool:
        """Every worker this bench started still runs (one that crashed would leave it waiting)."""
        return all(process.poll() is None for process in self.processes)

    def end(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                stop(process.pid)
        self.processes.remove(process)


def history(names: Names, customers: int, events: int, seed: int = 3) -> Iterator[Record]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 0.8 for i in range(customers)]  # Pareto-like: a few very active customers
    ids = rng.choices(range(customers), weights=weights, k=events)
    for n, c in enumerate(ids):
        cid = f"B{c:07d}"
        when = START + timedelta(seconds=n * 365 * 86400 / events)
        doc = {"event_id": f"h{n}", "customer_id": cid, "occurred_at": when.isoformat(),
               "kind": "refund" if rng.random() < 0.03 else "purchase", "amount": f"{rng.uniform(10, 3000):.2f}",
               "order_id": f"o{n}"}
        yield names.transactions, cid.encode(), orjson.dumps(doc), None


def one_each(names: Names, customers: int) -> Iterator[Record]:
    when = (START + timedelta(days=300)).isoformat()
    for c in range(customers):
        cid = f"R{c:07d}"
        doc = {"event_id": f"r{c}", "customer_id": cid, "occurred_at": when, "amount": "50.00", "order_id": f"r{c}"}
        yield names.transactions, cid.encode(), orjson.dumps(doc), None


async def end_offsets(settings: Settings, topic: str) -> int:
    return sum((await true_ends(settings, [topic])).values())


def naive_rate(bench: Bench, env: dict[str, str], seconds: float) -> tuple[float, int]:
    env = {**env, "SEGMENTER_DATA_DIR": str(bench.root / "naive")}
    Path(env["SEGMENTER_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    count_file = Path(env["SEGMENTER_DATA_DIR"]) / "naive.count"
    process = subprocess.Popen([sys.executable, "-m", "bench.naive"], env={**os.environ, **env},
                               stdout=(Path(env["SEGMENTER_DATA_DIR"]) / "naive.log").open("ab"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    bench.processes.append(process)

    def count() -> int:
        try:
            return int(count_file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0
    deadline = time.monotonic() + 180
    while count() == 0:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the naive baseline did not start; see {count_file.parent / 'naive.log'}")
        time.sleep(0.2)
    first, t0 = count(), time.monotonic()
    time.sleep(seconds)
    done, elapsed = count() - first, time.monotonic() - t0
    bench.end(process)
    return done / elapsed, done


async def time_to_first_change(settings: Settings, started: float, timeout_s: float = 120) -> float:
    """Produce one new customer's purchase now; seconds from ``started`` until its change arrives."""
    names = Names(settings.topic_prefix)
    consumer = await tail(settings, names.segment_changes)
    prod = producer(settings)
    await prod.start()
    try:
        cid = f"P{random.randrange(10**9):09d}"
        doc = {"event_id": f"probe-{cid}", "customer_id": cid, "occurred_at": (START + timedelta(days=364)).isoformat(),
               "amount": "1.00", "order_id": cid}
        await prod.send_and_wait(names.transactions, key=cid.encode(), value=orjson.dumps(doc))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=100)).values():
                if any(orjson.loads(m.value)["customer_id"] == cid for m in messages):
                    return time.monotonic() - started
        raise SystemExit("the restarted worker did not answer within the timeout")
    finally:
        await prod.stop()
        await consumer.stop()


async def latency(settings: Settings, rate: float, seconds: float, customers: int,
                  hot_share: float = 0.05) -> tuple[list[float], int]:
    """Events like the history (same customers, same skew, dated just after it) at ``rate``/s for
    ``seconds``, with one very active customer mixed in; latency = produce -> the segment-change that
    names the event. Records go out as one producer batch per partition every few milliseconds, so
    the load generator itself stays cheap."""
    names = Names(settings.topic_prefix)
    consumer = await tail(settings, names.segment_changes)
    prod = producer(settings)
    await prod.start()
    partitioner = DefaultPartitioner()
    partitions = list(range(settings.partitions))
    sent: dict[str, float] = {}
    seen: list[float] = []
    rng = random.Random(9)
    total = int(rate * seconds) + 1
    pool = rng.choices(range(customers), weights=[1 / (i + 1) ** 0.8 for i in range(customers)], k=total)
    day_one = START + timedelta(days=366)

    async def drain() -> None:
        await _arrivals(consumer, sent, seen)

    try:
        t0, n, hot = time.perf_counter(), 0, 0
        while time.perf_counter() - t0 < seconds:
            target = min(int((time.perf_counter() - t0) * rate), total)
            batches: dict[int, Any] = {}
            now = time.perf_counter()
            while n < target:
                if rng.random() < hot_share:
                    key, hot = b"HOT0000", hot + 1
                else:
                    key = f"B{pool[n]:07d}".encode()
                eid = f"lat-{n}"
                sent[eid] = now
                when = (day_one + timedelta(seconds=n * 86400 / total)).isoformat()
                value = orjson.dumps({"event_id": eid, "customer_id": key.decode(), "occurred_at": when,
                                      "amount": f"{rng.uniform(10, 3000):.2f}", "order_id": eid})
                partition = partitioner(key, partitions, partitions)
                batch = batches.get(partition) or batches.setdefault(partition, prod.create_batch())
                if batch.append(key=key, value=value, timestamp=None) is None:
                    await prod.send_batch(batch, names.transactions, partition=partition)
                    batch = batches[partition] = prod.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
                n += 1
            for partition, batch in batches.items():
                await prod.send_batch(batch, names.transactions, partition=partition)
            await drain()
            await asyncio.sleep(0.005)
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline:  # changes still on their way
            await drain()
            await asyncio.sleep(0.01)
    finally:
        await prod.stop()
        await consumer.stop()
    return seen, hot


async def _arrivals(consumer: Any, sent: dict[str, float], seen: list[float]) -> None:
    """Match arrived segment-changes to the events that caused them."""
    for messages in (await consumer.getmany(timeout_ms=0)).values():
        arrived = time.perf_counter()
        for m in messages:
            at = sent.pop(orjson.loads(m.value).get("event_id") or "", None)
            if at is not None:
                seen.append(arrived - at)


def disk_bytes_per_customer(data_dir: Path, compression: str) -> tuple[float, float, int]:
    """(on-disk bytes per customer after compaction, mean stored value bytes, customers)."""
    paths = sorted((data_dir / "faust").rglob("customers-*.db"))
    customers = value_bytes = disk = 0
    for path in paths:
        # the worker's own options: opening replays the store's log into a new file written with the
        # options it is opened with
        faust_compat.register(compression=compression)
        db = rocksdict.Rdict(str(path), options=faust_compat.CompressedRocksDBOptions().as_options())
        for key, value in db.items():
            if not key.startswith(b"__faust"):
                customers += 1
                value_bytes += len(value)
        db.compact_range(None, None)
        db.close()
        disk += sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.suffix in (".sst", ".log"))
    return disk / max(customers, 1), value_bytes / max(customers, 1), customers


def one_worker(bench: Bench, args: argparse.Namespace, skip: set[str]) -> None:
    env = bench.env("one.", "one")
    settings = bench.settings(env)
    names = Names(settings.topic_prefix)
    took = asyncio.run(bench.prepare(settings, history(names, args.customers, args.events)))
    say(f"  produced the input in {took:.1f}s")
    naive = None
    if "naive" not in skip:
        naive, done = naive_rate(bench, env, args.naive_seconds)
        say(f"naive faust agent (table write per event)   {naive:>9,.0f} events/s  "
            f"({done:,} events in {args.naive_seconds:.0f}s)")
    worker = bench.worker(settings, env)
    wait_ready(Path(settings.data_dir), worker, timeout_s=300)
    t0 = time.perf_counter()
    asyncio.run(wait_caught_up(settings, timeout_s=7200, alive=bench.alive))
    elapsed = time.perf_counter() - t0
    rate = bench.rate = args.events / elapsed
    changes = asyncio.run(end_offsets(settings, names.segment_changes))
    say(f"segmenter, one worker                       {rate:>9,.0f} events/s  ({elapsed:.1f}s; "
        f"{changes:,} segment-changes, Redis projection on)")
    if naive:
        say(f"  ratio segmenter / naive faust             {rate / naive:>9.1f}x")
    if "latency" not in skip:
        lat_rate = args.latency_rate or rate / 2
        lat, hot = asyncio.run(latency(settings, lat_rate, args.latency_seconds, args.customers,
                                         args.hot_share))
        lat.sort()
        if lat:
            p50, p99 = statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            say(f"latency at {lat_rate:,.0f} events/s".ljust(44) + f"p50 {p50 * 1000:.1f} ms  "
                f"p99 {p99 * 1000:.1f} ms  ({len(lat):,} events that changed a segment; {hot:,} events of "
                "one hot customer mixed in)")
    bench.end(worker)
    per_disk, per_value, stored = disk_bytes_per_customer(Path(settings.data_dir), settings.store_compression)
    say(f"state on disk                               {per_disk:>9.1f} bytes/customer  "
        f"(RocksDB after compaction; stored record {per_value:.1f} bytes; {stored:,} customers)")
    restart(bench, settings, env, stored)


def restart(bench: Bench, settings: Settings, env: dict[str, str], customers: int) -> None:
    started = time.monotonic()
    worker = bench.worker(settings, env)
    ready = asyncio.run(time_to_first_change(settings, started))
    say(f"restart to ready ({customers:,} customers)".ljust(44) + f"{ready:>9.1f} s  (start -> a new event's change)")
    bench.end(worker)


def two_workers(bench: Bench, args: argparse.Namespace) -> None:
    env = bench.env("two.", "two-a")
    settings = bench.settings(env)
    asyncio.run(bench.prepare(settings, history(Names(settings.topic_prefix), args.customers, args.events)))
    first = bench.worker(settings, env)
    env_b = {**env, "SEGMENTER_DATA_DIR": str(bench.root / "two-b"), "SEGMENTER_WEB_PORT": str(free_port())}
    second = bench.worker(bench.settings(env_b), env_b)
    wait_ready(Path(settings.data_dir), first, timeout_s=300)
    wait_ready(bench.root / "two-b", second, timeout_s=300)
    t0 = time.perf_counter()
    asyncio.run(wait_caught_up(settings, timeout_s=7200, alive=bench.alive))
    rate = args.events / (time.perf_counter() - t0)
    say(f"segmenter, two workers                      {rate:>9,.0f} events/s  ({rate / bench.rate:.2f}x one worker)")
    bench.end(first)
    bench.end(second)


def big_restart(bench: Bench, args: argparse.Namespace) -> None:
    env = bench.env("big.", "big")
    settings = bench.settings(env)
    asyncio.run(bench.prepare(settings, one_each(Names(settings.topic_prefix), args.restart_customers)))
    worker = bench.worker(settings, env)
    wait_ready(Path(settings.data_dir), worker, timeout_s=300)
    t0 = time.perf_counter()
    asyncio.run(wait_caught_up(settings, timeout_s=7200, alive=bench.alive))
    say(f"  loaded {args.restart_customers:,} customers at "
        f"{args.restart_customers / (time.perf_counter() - t0):,.0f} events/s")
    bench.end(worker)
    restart(bench, settings, env, args.restart_customers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=int(os.environ.get("BENCH_CUSTOMERS", "200000")))
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "1000000")))
    parser.add_argument("--naive-seconds", type=float, default=30.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--hot-share", type=float, default=0.05, help="share of latency events of one customer")
    parser.add_argument("--latency-rate", type=float, default=0.0, help="events/s (default: half the measured rate)")
    parser.add_argument("--restart-customers", type=int, default=int(os.environ.get("BENCH_RESTART", "1000000")))
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: naive,latency,two,restart")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with embedded_stack("segmenter-bench-") as bench:
        say(f"bench: {args.events:,} transactions of {args.customers:,} customers, 8 partitions, retail rules "
            f"(files in {bench.root})")
        one_worker(bench, args, skip)
        if "two" not in skip:
            two_workers(bench, args)
        if "restart" not in skip:
            big_restart(bench, args)


@contextmanager
def embedded_stack(prefix: str) -> Iterator[Bench]:
    """A broker and a Redis of the bench's own under a new temporary directory; everything it started
    is stopped on the way out."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    bport, rport = free_port(), free_port()
    broker, redis_proc = start_broker(bport, root / "logs"), start_redis(rport, root / "redis")
    bench = Bench(root, f"127.0.0.1:{bport}", f"redis://127.0.0.1:{rport}/0")
    try:
        yield bench
    finally:
        for process in list(bench.processes):
            stop(process.pid)
        stop(redis_proc.pid)
        stop(broker.pid)


if __name__ == "__main__":
    main()
