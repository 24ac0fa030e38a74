"""segmenter and Quix Streams side by side: one broker, the same input, the same job, in one run.

The input is bench.stream's: N transactions of C customers (Pareto-skewed, a year of history) on 8
partitions, the retail value rules. Each round starts a broker and a Redis of its own (no round runs beside
what the rounds before it left there), produces the input to them, then runs

- segmenter, one worker: the changelog, segment-change events, time-driven wake-ups, de-duplication and
  the Redis projection all on; timed from the worker's ready file;
- the peer, ``bench/peers/quix_app.py`` (Quix Streams with its RocksDB state and changelog topic, in the
  virtual environment ``make peers`` builds); timed from its first record;

each until its consumer group has committed every input offset, in turn (rounds alternate who goes
first). Printed per system, median over the rounds: events/s, CPU seconds of the process over the timed
part, peak RSS, state bytes per customer (RocksDB's tables and write-ahead logs under its state directory after it
stopped, uncompacted) and
change records; then the ratio.

The equality check, on the first round: segmenter's offline ``classify`` over the same transactions as
of the last event's day is the reference; the peer evaluates its stored state as of that day (``sweep``
records, after it caught up) and segmenter's Redis read model is read as it stands. A difference is an
error (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.cpu import CpuMeter, cpu_seconds, rss_mib
from bench.stream import RULES, Bench, embedded_stack, end_offsets, flush_line, history, say
from segmenter.rules import load_ruleset
from streams.cli.classify_job import ClassifyJob, load_population
from streams.cli.csv_input import BadRows
from streams.cli.ops import wait_caught_up
from streams.kafka.reading import read_topic
from streams.kafka.security import kafka_options
from streams.kafka.topics import produce_records, started
from streams.names import Names
from streams.readmodel.reader import ReadModel
from streams.settings import Settings
from streams.stack.processes import wait_ready

ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = Path(os.environ.get("BENCH_PEER_VENV", ROOT / "var/peers/quix")) / "bin/python"
PEER_APP = Path(__file__).with_name("quix_app.py")


@dataclass
class Run:
    events_s: float
    cpu_s: float
    peak_rss_mib: float
    state_bytes: int
    changes: int


def dir_bytes(path: Path) -> int:
    """RocksDB's data under ``path``: its tables (.sst) and write-ahead logs (NNNNNN.log), not its info logs,
    manifests and options files (segmenter has twice as many stores, two tables of 8 partitions)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.suffix in (".sst", ".log"))


async def input_topic(settings: Settings) -> None:
    """The round's input topic, created before the others with ``retention.ms`` set: Quix Streams derives its
    changelog topics' retention from the input topic's and stops with a KeyError when the broker's description
    of the topic lacks it (the embedded broker lists only the settings a topic was created with; Apache Kafka
    lists its defaults too). segmenter reads no topic setting."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await started(admin)
    try:
        await admin.create_topics([NewTopic(Names(settings.topic_prefix).transactions, settings.partitions, 1,
                                            topic_configs={"retention.ms": "-1"})])
    finally:
        await admin.close()


def run_segmenter(bench: Bench, settings: Settings, env: dict[str, str], events: int) -> Run:
    names = Names(settings.topic_prefix)
    worker = bench.worker(settings, env)
    wait_ready(Path(settings.data_dir), worker, timeout_s=300)
    cpu0, t0 = cpu_seconds(worker.pid) or 0.0, time.perf_counter()
    with bench.cpu(worker) as meter:
        asyncio.run(wait_caught_up(settings, timeout_s=3600, alive=bench.alive))
    elapsed, cpu = time.perf_counter() - t0, (cpu_seconds(worker.pid) or 0.0) - cpu0
    peak = rss_mib(worker.pid, "VmHWM")
    say(f"  segmenter: {elapsed:.1f} s; {meter.line()}")
    bench.end(worker)
    say(f"  segmenter's {flush_line(settings, worker.pid)}")
    changes = asyncio.run(end_offsets(settings, names.segment_changes))
    return Run(events / elapsed, cpu, peak, dir_bytes(Path(settings.data_dir) / "faust"), changes)


class Peer:
    """The Quix Streams app on the round's input topic, with a group, a changes topic and a state dir of its own."""

    def __init__(self, bench: Bench, settings: Settings, name: str) -> None:
        self.bench, self.settings = bench, settings
        self.group, self.changes = f"{name}.quix", f"{name}.quix-changes"
        self.input = Names(settings.topic_prefix).transactions
        self.state_dir = bench.root / f"{name}-quix"
        self.state_dir.mkdir(parents=True)
        log = (self.state_dir.parent / f"{name}-quix.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - the peer's own interpreter and app, arguments we build
            [str(PEER_PYTHON), str(PEER_APP), "--broker", bench.bootstrap, "--input", self.input,
             "--changes", self.changes, "--group", self.group, "--state-dir", str(self.state_dir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        bench.processes.append(self.process)

    def run(self, events: int) -> Run:
        started = self.state_dir / "started"
        deadline = time.monotonic() + 300
        while not started.exists() or not started.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Quix Streams peer did not start; see {self.state_dir.parent}")
            time.sleep(0.05)
        cpu0 = cpu_seconds(self.process.pid) or 0.0
        t0 = float(started.read_text())
        with CpuMeter({"quix": self.process.pid, **self.bench.stack}) as meter:
            self.caught_up()
        elapsed, cpu = time.time() - t0, (cpu_seconds(self.process.pid) or 0.0) - cpu0
        say(f"  Quix Streams: {elapsed:.1f} s; {meter.line()}")
        return Run(events / elapsed, cpu, rss_mib(self.process.pid, "VmHWM"), 0,
                   asyncio.run(end_offsets(self.settings, self.changes)))

    def caught_up(self) -> None:
        asyncio.run(wait_caught_up(self.settings, timeout_s=3600, alive=self.bench.alive,
                                   groups={self.group: (self.input,)}))

    def sweep(self, customers: list[str], as_of: str) -> dict[str, str]:
        """The peer's segment of each customer as of ``as_of``, evaluated from its stored state."""
        asyncio.run(produce_records(self.settings, (
            (self.input, c.encode(), orjson.dumps({"customer_id": c, "sweep": as_of}), None) for c in customers)))
        self.caught_up()
        deadline = time.monotonic() + 120
        while True:  # the records are produced before the offsets are committed, but may still be in flight
            docs = [orjson.loads(v) for _, v in asyncio.run(read_topic(self.settings, self.changes))]
            final = {d["customer_id"]: d["segment"] for d in docs if d.get("final")}
            if len(final) >= len(customers) or time.monotonic() > deadline:
                return final
            time.sleep(0.5)

    def stop(self, run: Run) -> Run:
        self.bench.end(self.process)
        run.state_bytes = dir_bytes(self.state_dir)
        return run


def reference(root: Path, customers: int, events: int) -> tuple[dict[str, str], str]:
    """segmenter's offline classify over the same transactions: customer -> value segment, and the as-of time."""
    path, last = root / "transactions.csv", ""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["event_id", "customer_id", "occurred_at", "kind", "amount", "order_id"])
        for _, _, value, _ in history(Names(""), customers, events):
            doc = orjson.loads(value)
            writer.writerow([doc[k] for k in ("event_id", "customer_id", "occurred_at", "kind", "amount", "order_id")])
            last = doc["occurred_at"]
    settings = Settings()
    policy = settings.policy()
    ruleset = load_ruleset(RULES, policy.money_scale)
    as_of_day = policy.calendar.day(datetime.fromisoformat(last))
    population = load_population(ClassifyJob(ruleset, policy, as_of_day, path), BadRows(), show_progress=False)
    return {item.customer_id: item.segments[0] for item in population.classify(ruleset, as_of_day)}, last


def compare(name: str, found: dict[str, str], expected: dict[str, str]) -> int:
    differ = sorted(c for c in expected.keys() | found.keys() if found.get(c) != expected.get(c))
    say(f"  {name}: {len(found):,} customers, {len(differ):,} differ from classify"
        + (f" (first: {', '.join(f'{c} {found.get(c)} != {expected.get(c)}' for c in differ[:3])})" if differ else ""))
    return len(differ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=int(os.environ.get("BENCH_CUSTOMERS", "200000")))
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", "1000000")))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    args = parser.parse_args()
    if not PEER_PYTHON.exists():
        raise SystemExit(f"the Quix Streams peer's environment is missing ({PEER_PYTHON}): run `make peers`")
    version = subprocess.run(  # noqa: S603 - the peer's own interpreter
        [str(PEER_PYTHON), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True, text=True, check=True).stdout.strip()
    runs: dict[str, list[Run]] = {"segmenter": [], "quix": []}
    differ = 0
    root = Path(tempfile.mkdtemp(prefix="segmenter-peers-"))
    say(f"peers: {args.events:,} transactions of {args.customers:,} customers, 8 partitions, retail rules, "
        f"{args.rounds} round(s), {os.cpu_count()} cores (files in {root})")
    expected, as_of = reference(root, args.customers, args.events)
    say(f"  reference: classify as of {as_of}: {len(expected):,} customers")
    for n in range(args.rounds):
        # A broker and a Redis of the round's own: nothing the rounds before it left there weighs on it.
        with embedded_stack(f"segmenter-peers-r{n + 1}-") as bench:
            differ += one_round(bench, args, n, expected=expected, as_of=as_of, version=version, runs=runs)
    table(runs, len(expected), version, args.events)
    if differ:
        raise SystemExit("the final segments differ from classify (see above)")


def one_round(bench: Bench, args: argparse.Namespace, n: int, *, expected: dict[str, str], as_of: str, version: str,
              runs: dict[str, list[Run]]) -> int:
    """Round ``n`` (from 0) on a fresh stack; returns how many customers differ from classify (checked in round 0)."""
    differ = 0
    name = f"r{n}"
    env = bench.env(f"{name}.", name)
    settings = bench.settings(env)
    asyncio.run(input_topic(settings))
    took = asyncio.run(bench.prepare(settings, history(Names(settings.topic_prefix), args.customers, args.events)))
    say(f"round {n + 1}: produced the input in {took:.1f}s (files in {bench.root})")
    if n % 2:  # the peer first
        peer = Peer(bench, settings, name)
        runs["quix"].append(peer.stop(peer.run(args.events)))
        runs["segmenter"].append(run_segmenter(bench, settings, env, args.events))
        return differ
    runs["segmenter"].append(run_segmenter(bench, settings, env, args.events))
    if n == 0:
        model = ReadModel.of(settings)
        differ += compare("segmenter's Redis read model", {
            v.customer_id: v.segments.get("value", "") for v in model.customers(model.customer_ids())}, expected)
    peer = Peer(bench, settings, name)
    run = peer.run(args.events)
    if n == 0:
        differ += compare(f"Quix Streams {version}", peer.sweep(sorted(expected), as_of), expected)
    runs["quix"].append(peer.stop(run))
    return differ


def table(runs: dict[str, list[Run]], customers: int, version: str, events: int) -> None:
    rows: list[tuple[str, Callable[[Run], float], str]] = [
        ("events/s", lambda r: r.events_s, "{:,.0f}"),
        ("CPU seconds", lambda r: r.cpu_s, "{:,.1f}"),
        ("CPU µs per event", lambda r: r.cpu_s / events * 1e6, "{:,.0f}"),
        ("peak RSS MiB", lambda r: r.peak_rss_mib, "{:,.0f}"),
        ("state bytes/customer", lambda r: r.state_bytes / customers, "{:,.0f}"),
        ("change records", lambda r: r.changes, "{:,.0f}")]
    say(f"\nmedian of {len(runs['segmenter'])} round(s), {os.cpu_count()} cores")
    say(f"{'':24}{'segmenter':>14}{'Quix Streams ' + version:>22}{'segmenter/Quix':>16}")
    for label, of, fmt in rows:
        mine, theirs = (statistics.median(of(r) for r in runs[system]) for system in ("segmenter", "quix"))
        say(f"{label:<24}{fmt.format(mine):>14}{fmt.format(theirs):>22}{mine / theirs if theirs else 0:>15.2f}x")


if __name__ == "__main__":
    sys.exit(main())
