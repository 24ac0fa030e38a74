"""End-to-end benchmark on the embedded stack (Tansu + Redis started here), figures on stdout.

The job: N transactions of C customers (Pareto-skewed, a year of history) on 8 partitions, the
retail value rules, a change event on every segment change, durable state with a changelog.

1. naive: the obvious faust design (``bench/naive.py``: one agent, a table write per event), run
   for ``--naive-seconds`` on the same input; events/s from its processed count;
2. segmenter, one worker: events/s = N / (worker ready -> every input offset committed), with the
   changelog, the segment-changes, time-driven wake-ups, de-duplication and Redis on;
3. bytes per customer on disk (the RocksDB customers store, compacted) and per stored record;
4. restart to ready: SIGTERM, start again on the same data dir; ready = a new event's change arrives;
5. latency at half the measured rate: events of the same customers dated just after the history,
   with one very active customer mixed in; produce -> segment-change received, p50/p99 (overall and
   per 5 s), and the CPU each process used meanwhile; then ``floor``: the same load through a fresh
   broker alone (produce -> fetch, no worker), the part of the latency that is the broker's;
6. two workers (``--workers 2,4`` for more) on a fresh copy of the input: events/s, the ratio to one
   worker, and the workers' CPU per event beside one worker's, with the machine's core count;
7. restart with ``--restart-customers`` customers (one event each) in the state.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import orjson
import rocksdict

from bench.cpu import CpuMeter, rss_mib
from bench.live import (
    START,
    WINDOW_S,
    by_window,
    histogram_quantile,
    latency,
    own_latency,
    percentiles,
    time_to_first_change,
)
from segmenter.rules import load_ruleset
from streams.cli.ops import wait_caught_up
from streams.kafka import faust_compat
from streams.kafka.control import apply_rules
from streams.kafka.reading import true_ends
from streams.kafka.topics import Record, create_topics, produce_records
from streams.names import Names
from streams.readmodel.reader import ReadModel
from streams.settings import Settings
from streams.stack.embedded import free_port, start_broker, start_redis, stop
from streams.stack.processes import spawn_worker, wait_ready
from streams.worker.flush import FLUSH_STAGES

ROOT = Path(__file__).resolve().parent.parent
RECOVERED = re.compile(r"recovered (\d+) changelog records in ([0-9.]+)s")  # the worker's log line
RULES = (ROOT / "examples/rules/retail-value.yaml").read_text()


def say(text: str) -> None:
    print(text, flush=True)


class Bench:
    def __init__(self, root: Path, bootstrap: str, redis_url: str) -> None:
        self.root, self.bootstrap, self.redis_url = root, bootstrap, redis_url
        self.processes: list[subprocess.Popen[bytes]] = []
        self.stack: dict[str, int] = {}  # broker and Redis: label -> pid, for the CPU shares
        self.rate = 0.0  # one worker's events/s, once measured
        self.cpu_us = 0.0  # and its CPU µs per event

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

    def cpu(self, worker: subprocess.Popen[bytes]) -> CpuMeter:
        return CpuMeter({"worker": worker.pid, **self.stack, "bench": os.getpid()})

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
    metrics_port = free_port()  # the latency phase reads the worker's own part from its histogram
    worker = bench.worker(settings, {**env, "SEGMENTER_METRICS_PORT": str(metrics_port)})
    wait_ready(Path(settings.data_dir), worker, timeout_s=300)
    t0 = time.perf_counter()
    with bench.cpu(worker) as bulk:
        asyncio.run(wait_caught_up(settings, timeout_s=7200, alive=bench.alive))
    elapsed = time.perf_counter() - t0
    rate = bench.rate = args.events / elapsed
    bench.cpu_us = bulk.shares.get("worker", 0.0) * elapsed / args.events * 1e6
    changes = asyncio.run(end_offsets(settings, names.segment_changes))
    say(f"segmenter, one worker                       {rate:>9,.0f} events/s  ({elapsed:.1f}s; "
        f"{changes:,} segment-changes, Redis projection on)")
    say(f"  CPU: {bulk.line()}")
    say(f"  worker RSS after it: {rss_mib(worker.pid):,.0f} MiB (peak {rss_mib(worker.pid, 'VmHWM'):,.0f} MiB)")
    if naive:
        say(f"  ratio segmenter / naive faust             {rate / naive:>9.1f}x")
    if "latency" not in skip:
        lat_rate = args.latency_rate or rate / 2
        own_before = own_latency(metrics_port)
        with bench.cpu(worker) as live:
            seen, hot = asyncio.run(latency(settings, lat_rate, args.latency_seconds, args.customers,
                                              args.hot_share))
        own_after = own_latency(metrics_port)
        report_latency(f"latency at {lat_rate:,.0f} events/s", seen, live,
                       f"events that changed a segment; {hot:,} events of one hot customer mixed in")
        (p50, batches), (p99, _) = (histogram_quantile(q, own_before, own_after) for q in (0.5, 0.99))
        say("  segmenter's own part".ljust(44) + f"p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms  ({batches:,} "
            "fetched batches that produced changes: handed to the worker -> changes handed to the producer; "
            "from its histogram)")
        if "floor" not in skip:
            broker_floor(bench, lat_rate, args)
    bench.end(worker)
    say(f"  {flush_line(settings, worker.pid)}")
    per_disk, per_value, stored = disk_bytes_per_customer(Path(settings.data_dir), settings.store_compression)
    say(f"state on disk                               {per_disk:>9.1f} bytes/customer  "
        f"(RocksDB after compaction; stored record {per_value:.1f} bytes; {stored:,} customers)")
    restart(bench, settings, env, stored)


def worker_counters(settings: Settings, pid: int) -> dict[str, int]:
    """The counters the worker ``pid`` last published (every 5 s while it runs, and as it stops)."""
    found = next((c for worker, c in ReadModel.of(settings).counters().items() if worker.endswith(f":{pid}")), None)
    return dict(found or {})


def flush_line(settings: Settings, pid: int, since: dict[str, int] | None = None) -> str:
    """Where a stopped worker's flushes spent their time, from the counters it published as it stopped (less those
    of ``since``, an earlier ``worker_counters``)."""
    counters = worker_counters(settings, pid)
    if not counters:
        return "flushes: the worker published no counters"
    if since:
        counters = {key: value - since.get(key, 0) for key, value in counters.items()}
    stages = ", ".join(f"{stage} {counters.get(f'flush_ms_{stage}', 0) / 1000:.1f}" for stage in FLUSH_STAGES)
    return (f"flushes: {counters.get('flushes', 0):,} writing {counters.get('stored', 0):,} customers; seconds in "
            f"{stages}; the worker waited for one {counters.get('flush_waits', 0):,} times, "
            f"{counters.get('flush_wait_ms', 0) / 1000:.1f} s in all; {counters.get('store_reads', 0):,} customers "
            "read back from the store")


def report_latency(title: str, seen: list[tuple[float, float]], cpu: CpuMeter, what: str) -> None:
    if seen:
        p50, p99 = percentiles([took for _, took in seen])
        say(title.ljust(44) + f"p50 {p50 * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms  ({len(seen):,} {what})")
        say(f"    p99 per {WINDOW_S:.0f} s: " + ", ".join(f"{w * 1000:.0f}" for w in by_window(seen)) + " ms")
    else:
        say(title.ljust(44) + "nothing arrived")
    say(f"    CPU: {cpu.line()} (bench: the load generator and its consumer)")


def broker_floor(bench: Bench, rate: float, args: argparse.Namespace) -> None:
    """The latency phase's load through a fresh broker of its own with nothing else on it: produce ->
    fetch, one hop (the worker's path has two, the input in and the change out). Its best case."""
    port = free_port()
    broker = start_broker(port, bench.root / "floor")
    try:
        settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix="floor.", partitions=8)
        asyncio.run(create_topics(settings))
        with CpuMeter({"broker": broker.pid, "bench": os.getpid()}) as cpu:
            seen, _ = asyncio.run(latency(settings, rate, args.latency_seconds, args.customers, args.hot_share,
                                          floor=True))
        report_latency("  a fresh broker alone, same load, one hop", seen, cpu,
                       "events, produce -> fetch, no worker")
    finally:
        stop(broker.pid)


def restart(bench: Bench, settings: Settings, env: dict[str, str], customers: int) -> None:
    """On the same data dir, then on an empty one (every customer recovered from the changelog)."""
    started = time.monotonic()
    worker = bench.worker(settings, env)
    ready = asyncio.run(time_to_first_change(settings, started))
    say(f"restart to ready ({customers:,} customers)".ljust(44) + f"{ready:>9.1f} s  (start -> a new event's change)")
    bench.end(worker)
    empty = {**env, "SEGMENTER_DATA_DIR": str(Path(env["SEGMENTER_DATA_DIR"]) / "empty")}
    started = time.monotonic()
    worker = bench.worker(bench.settings(empty), empty)
    ready = asyncio.run(time_to_first_change(settings, started, timeout_s=600))
    bench.end(worker)
    found = RECOVERED.findall((Path(empty["SEGMENTER_DATA_DIR"]) / "worker.log").read_text())
    records, seconds = (int(found[-1][0]), float(found[-1][1])) if found else (0, 0.0)
    rate = f"{customers / seconds:,.0f} customers/s" if seconds else "rate not logged"
    say("  from an empty data dir".ljust(44) + f"{ready:>9.1f} s  (recovery: {records:,} changelog records in "
        f"{seconds:.2f} s, {rate})")


def more_workers(bench: Bench, args: argparse.Namespace, count: int) -> None:
    """``count`` workers in one group over the same input: events/s and their CPU per event beside one worker's,
    with the machine's core count (the broker, Redis and the bench share the cores with them)."""
    env = bench.env(f"w{count}.", f"w{count}-1")
    settings = bench.settings(env)
    asyncio.run(bench.prepare(settings, history(Names(settings.topic_prefix), args.customers, args.events)))
    envs = [env, *({**env, "SEGMENTER_DATA_DIR": str(bench.root / f"w{count}-{i}"),
                    "SEGMENTER_WEB_PORT": str(free_port())} for i in range(2, count + 1))]
    workers = [bench.worker(bench.settings(e), e) for e in envs]
    for e, worker in zip(envs, workers, strict=True):
        wait_ready(Path(e["SEGMENTER_DATA_DIR"]), worker, timeout_s=300)
    labels = [f"worker {i}" for i in range(1, count + 1)]
    t0 = time.perf_counter()
    with CpuMeter({**dict(zip(labels, (w.pid for w in workers), strict=True)), **bench.stack}) as cpu:
        asyncio.run(wait_caught_up(settings, timeout_s=7200, alive=bench.alive))
    elapsed = time.perf_counter() - t0
    rate = args.events / elapsed
    per_event = sum(cpu.shares.get(label, 0.0) for label in labels) * elapsed / args.events * 1e6
    say(f"{f'segmenter, {count} workers':<44}{rate:>9,.0f} events/s  ({rate / bench.rate:.2f}x one worker; "
        f"workers' CPU {per_event:.0f} µs/event, {per_event / bench.cpu_us:.2f}x one worker's; {os.cpu_count()} cores)")
    say(f"  CPU: {cpu.line()}")
    for worker in workers:
        bench.end(worker)


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
    parser.add_argument("--workers", default="2", type=lambda text: [int(n) for n in text.split(",")],
                        help="the worker counts of the phase 'two' (comma-separated, each beside one worker)")
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: naive,latency,floor,two,restart")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with embedded_stack("segmenter-bench-") as bench:
        say(f"bench: {args.events:,} transactions of {args.customers:,} customers, 8 partitions, retail rules "
            f"(files in {bench.root})")
        one_worker(bench, args, skip)
        if "two" not in skip:
            for count in args.workers:
                more_workers(bench, args, count)
        if "restart" not in skip:
            big_restart(bench, args)


@contextmanager
def embedded_stack(prefix: str) -> Iterator[Bench]:
    """A broker and a Redis of the bench's own under a new temporary directory; everything it started
    is stopped on the way out, also when the bench is stopped with SIGTERM (``timeout``, ``kill``): the workers,
    broker and Redis run in sessions of their own, so nothing else would stop them."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    bport, rport = free_port(), free_port()
    broker, redis_proc = start_broker(bport, root / "logs"), start_redis(rport, root / "redis")
    bench = Bench(root, f"127.0.0.1:{bport}", f"redis://127.0.0.1:{rport}/0")
    bench.stack = {"broker": broker.pid, "redis": redis_proc.pid}
    before = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield bench
    finally:
        for process in list(bench.processes):
            stop(process.pid)
        stop(redis_proc.pid)
        stop(broker.pid)
        signal.signal(signal.SIGTERM, before)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through embedded_stack's cleanup, as Ctrl-C does


if __name__ == "__main__":
    main()
