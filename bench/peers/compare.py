"""segmenter and Quix Streams side by side: one broker, the same input, in one run, against two peers.

The input is bench.stream's: N transactions of C customers (Pareto-skewed, a year of history) on 8
partitions, the retail value rules. Each round starts a broker and a Redis of its own (no round runs beside
what the rounds before it left there), produces the input to them, then runs, in turn (the order rotates by round):

- segmenter, one worker: the changelog, segment-change events, time-driven wake-ups, de-duplication and
  the Redis projection all on; timed from the worker's ready file;
- **the same-job peer**, ``bench/peers/quix_app.py --job same`` (Quix Streams with its RocksDB state and changelog
  topic, de-duplication of event ids in its state, the read model written by Quix Streams' ``RedisSink``, and
  time-driven transitions by the scan a Quix user would schedule, ``quix_scan.py``); timed from its first record;
- **the bare peer**, ``quix_app.py --job bare``: the windows, the rules and the change records, nothing else;

each until its consumer group has committed every input offset. Both peers run in the virtual environment
``make peers`` builds. Printed per system, median over the rounds: events/s, CPU seconds of the process over the
timed part, peak RSS, state bytes per customer (RocksDB's tables and write-ahead logs under its state directory
after it stopped, uncompacted) and change records; then the ratios.

**A day passes** (round 1): with every event in, the day after the last event's day comes, and customers move by
time alone (their purchases age out of a window). segmenter is sent the tick (one control record a partition) and
wakes the customers its due index holds for that day; the same-job peer's scan sends every customer in its read
model a tick record and re-evaluates each. Timed from the tick, or the scan's start, until every change the
reference expects is on the changes topic. The peer is first brought to the last event's day by the same scan
(untimed in the row: a daily scan would have run the day before).

The equality checks, on round 1: segmenter's offline ``classify`` over the same transactions is the reference.
As of the last event's day: segmenter's Redis read model as it stands, the bare peer's stored state (``sweep``
records, after it caught up), the same-job peer's Redis read model after its first scan; as of the next day:
both read models after the day passed, and the number of changes each published for it. A difference is an
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path

import orjson
import redis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.cpu import CpuMeter, cpu_seconds, rss_mib
from bench.stream import RULES, Bench, embedded_stack, end_offsets, flush_line, history, say
from segmenter.rules import load_ruleset
from streams.cli.classify_job import ClassifyJob, load_population
from streams.cli.csv_input import BadRows
from streams.cli.ops import wait_caught_up
from streams.kafka.control import send_control
from streams.kafka.reading import read_topic, tail
from streams.kafka.security import kafka_options
from streams.kafka.topics import produce_records, started
from streams.names import Names
from streams.readmodel.reader import ReadModel
from streams.settings import Settings
from streams.stack.processes import wait_ready

ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = Path(os.environ.get("BENCH_PEER_VENV", ROOT / "var/peers/quix")) / "bin/python"
PEER_APP = Path(__file__).with_name("quix_app.py")
PEER_SCAN = Path(__file__).with_name("quix_scan.py")
SYSTEMS = ("segmenter", "same", "bare")
TITLES = {"segmenter": "segmenter", "same": "Quix, same job", "bare": "Quix, bare"}


@dataclass
class Run:
    events_s: float
    cpu_s: float
    peak_rss_mib: float
    state_bytes: int
    changes: int


@dataclass
class DayPassed:
    """A day passes: how many customers time alone moved, and how long until every change was out."""

    changes: int
    seconds: float


@dataclass
class Reference:
    """segmenter's offline classification of the round's transactions: as of the last event's day and the next."""

    last: str  # the last event's time
    day: int
    at: dict[str, str]  # customer -> value segment as of ``day``
    next_day: dict[str, str]  # as of ``day + 1``

    @property
    def moved(self) -> int:
        return sum(1 for c, s in self.next_day.items() if self.at.get(c) != s)

    def iso(self, day: int) -> str:
        """Noon of ``day`` (UTC): inside that business day for any business time zone within 12 hours of UTC."""
        return datetime.combine(date.fromordinal(day), dtime(12), UTC).isoformat()


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


def until_out(settings: Settings, topic: str, expected: int, start: Callable[[], Awaitable[Callable[[], bool]]],
              timeout_s: float = 1800) -> float:
    """Seconds from ``start()`` (which returns whether what it started is done) until ``expected`` new records are
    on ``topic`` and that is done; a consumer at the topic's end counts them as they arrive."""

    async def run() -> float:
        consumer = await tail(settings, topic)
        try:
            t0, deadline = time.perf_counter(), time.monotonic() + timeout_s
            done, seen = await start(), 0
            while seen < expected or not done():
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {seen:,} of {expected:,} changes on {topic} within {timeout_s:.0f}s")
                seen += sum(len(records) for records in (await consumer.getmany(timeout_ms=20)).values())
            return time.perf_counter() - t0
        finally:
            await consumer.stop()

    return asyncio.run(run())


class Segmenter:
    """One segmenter worker on the round's input."""

    def __init__(self, bench: Bench, settings: Settings, env: dict[str, str]) -> None:
        self.bench, self.settings, self.env = bench, settings, env
        self.names = Names(settings.topic_prefix)
        self.worker = bench.worker(settings, env)

    def run(self, events: int) -> Run:
        wait_ready(Path(self.settings.data_dir), self.worker, timeout_s=300)
        cpu0, t0 = cpu_seconds(self.worker.pid) or 0.0, time.perf_counter()
        with self.bench.cpu(self.worker) as meter:
            self.caught_up()
        elapsed, cpu = time.perf_counter() - t0, (cpu_seconds(self.worker.pid) or 0.0) - cpu0
        say(f"  segmenter: {elapsed:.1f} s; {meter.line()}")
        return Run(events / elapsed, cpu, rss_mib(self.worker.pid, "VmHWM"), 0, self.changes())

    def caught_up(self) -> None:
        asyncio.run(wait_caught_up(self.settings, timeout_s=3600, alive=self.bench.alive))

    def changes(self) -> int:
        return asyncio.run(end_offsets(self.settings, self.names.segment_changes))

    def read_model(self) -> dict[str, str]:
        model = ReadModel.of(self.settings)
        return {v.customer_id: v.segments.get("value", "") for v in model.customers(model.customer_ids())}

    def day_passes(self, ref: Reference) -> DayPassed:
        """The tick to the next day on every partition; until every change time alone makes is out."""
        before = self.changes()

        async def tick() -> Callable[[], bool]:
            await send_control(self.settings, {"type": "tick", "to": ref.iso(ref.day + 1)})
            return lambda: True

        took = until_out(self.settings, self.names.segment_changes, ref.moved, tick)
        self.caught_up()
        return DayPassed(self.changes() - before, took)

    def stop(self, run: Run) -> Run:
        self.bench.end(self.worker)
        say(f"  segmenter's {flush_line(self.settings, self.worker.pid)}")
        run.state_bytes = dir_bytes(Path(self.settings.data_dir) / "faust")
        return run


class Peer:
    """The Quix Streams app (``job``: same or bare) on the round's input topic, with a group, a changes topic and a
    state dir of its own; the same job's read model under a Redis prefix of its own."""

    def __init__(self, bench: Bench, settings: Settings, name: str, job: str) -> None:
        self.bench, self.settings, self.job = bench, settings, job
        self.group, self.changes_topic = f"{name}.quix-{job}", f"{name}.quix-{job}-changes"
        self.input = Names(settings.topic_prefix).transactions
        self.state_dir = bench.root / f"{name}-quix-{job}"
        self.state_dir.mkdir(parents=True)
        self.prefix = f"{name}.quix:c:"
        log = (self.state_dir.parent / f"{name}-quix-{job}.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - the peer's own interpreter and app, arguments we build
            [str(PEER_PYTHON), str(PEER_APP), "--broker", bench.bootstrap, "--input", self.input,
             "--changes", self.changes_topic, "--group", self.group, "--state-dir", str(self.state_dir),
             "--job", job, "--redis-url", bench.redis_url, "--redis-prefix", self.prefix],
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
        say(f"  {TITLES[self.job]}: {elapsed:.1f} s; {meter.line()}")
        return Run(events / elapsed, cpu, rss_mib(self.process.pid, "VmHWM"), 0, self.changes())

    def caught_up(self) -> None:
        asyncio.run(wait_caught_up(self.settings, timeout_s=3600, alive=self.bench.alive,
                                   groups={self.group: (self.input,)}))

    def changes(self) -> int:
        return asyncio.run(end_offsets(self.settings, self.changes_topic))

    def sweep(self, customers: list[str], as_of: str) -> dict[str, str]:
        """The peer's segment of each customer as of ``as_of``, evaluated from its stored state."""
        asyncio.run(produce_records(self.settings, (
            (self.input, c.encode(), orjson.dumps({"customer_id": c, "sweep": as_of}), None) for c in customers)))
        self.caught_up()
        deadline = time.monotonic() + 120
        while True:  # the records are produced before the offsets are committed, but may still be in flight
            docs = [orjson.loads(v) for _, v in asyncio.run(read_topic(self.settings, self.changes_topic))]
            final = {d["customer_id"]: d["segment"] for d in docs if d.get("final")}
            if len(final) >= len(customers) or time.monotonic() > deadline:
                return final
            time.sleep(0.5)

    def read_model(self) -> dict[str, str]:
        """The same job's read model: customer -> segment, from the documents its RedisSink wrote."""
        client = redis.Redis.from_url(self.bench.redis_url)
        keys = list(client.scan_iter(match=f"{self.prefix}*", count=10_000))
        found: dict[str, str] = {}
        for at in range(0, len(keys), 10_000):
            chunk = keys[at:at + 10_000]
            for key, value in zip(chunk, client.mget(chunk), strict=True):
                if value is not None:
                    found[key.decode()[len(self.prefix):]] = orjson.loads(value)["segment"]
        client.close()
        return found

    def day_passes(self, ref: Reference, day: int, expected: int) -> DayPassed:
        """The scan a Quix user schedules, as of ``day``: until it has sent every customer its tick and every
        change expected is out (the records after it ``caught_up``)."""
        before = self.changes()
        scans: list[subprocess.Popen[bytes]] = []

        async def scan_now() -> Callable[[], bool]:
            scans.append(subprocess.Popen(  # noqa: S603 - the peer's own interpreter and script, arguments we build
                [str(PEER_PYTHON), str(PEER_SCAN), "--broker", self.bench.bootstrap, "--input", self.input,
                 "--redis-url", self.bench.redis_url, "--redis-prefix", self.prefix, "--as-of", ref.iso(day)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            return lambda: scans[0].poll() is not None

        took = until_out(self.settings, self.changes_topic, expected, scan_now)
        scan = scans[0]
        out = (scan.stdout.read() if scan.stdout else b"").decode().strip()
        if scan.returncode != 0:
            raise SystemExit(f"the peer's scan failed: {out[-2000:]}")
        self.caught_up()
        return DayPassed(self.changes() - before, took)

    def stop(self, run: Run) -> Run:
        self.bench.end(self.process)
        run.state_bytes = dir_bytes(self.state_dir)
        return run


def reference(root: Path, customers: int, events: int) -> Reference:
    """segmenter's offline classify over the same transactions, as of the last event's day and the next."""
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
    day = policy.calendar.day(datetime.fromisoformat(last))
    population = load_population(ClassifyJob(ruleset, policy, day, path), BadRows(), show_progress=False)

    def at(as_of: int) -> dict[str, str]:
        return {item.customer_id: item.segments[0] for item in population.classify(ruleset, as_of)}

    return Reference(last, day, at(day), at(day + 1))


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
    runs: dict[str, list[Run]] = {system: [] for system in SYSTEMS}
    differ = 0
    root = Path(tempfile.mkdtemp(prefix="segmenter-peers-"))
    say(f"peers: {args.events:,} transactions of {args.customers:,} customers, 8 partitions, retail rules, "
        f"{args.rounds} round(s), {os.cpu_count()} cores, Quix Streams {version} (files in {root})")
    ref = reference(root, args.customers, args.events)
    say(f"  reference: classify as of {ref.last}: {len(ref.at):,} customers; the next day, {ref.moved:,} of them "
        "move by time alone")
    passed: dict[str, DayPassed] = {}
    for n in range(args.rounds):
        # A broker and a Redis of the round's own: nothing the rounds before it left there weighs on it.
        with embedded_stack(f"segmenter-peers-r{n + 1}-") as bench:
            differ += one_round(bench, args, n, ref, runs=runs, passed=passed)
    table(runs, len(ref.at), version, args.events, passed)
    if differ:
        raise SystemExit("the final segments differ from classify (see above)")


def one_round(bench: Bench, args: argparse.Namespace, n: int, ref: Reference, *, runs: dict[str, list[Run]],
              passed: dict[str, DayPassed]) -> int:
    """Round ``n`` (from 0) on a fresh stack; returns how many customers differ from classify (checked in round 0,
    with the day passing). Every system is timed on the input alone: in round 0 the peers stay up after their
    runs, and the records of the checks (sweeps, the scans' ticks) go to the input only once all were timed."""
    name = f"r{n}"
    env = bench.env(f"{name}.", name)
    settings = bench.settings(env)
    asyncio.run(input_topic(settings))
    took = asyncio.run(bench.prepare(settings, history(Names(settings.topic_prefix), args.customers, args.events)))
    say(f"round {n + 1}: produced the input in {took:.1f}s (files in {bench.root})")
    order = SYSTEMS[n % 3:] + SYSTEMS[:n % 3]
    done: dict[str, Run] = {}
    peers: dict[str, Peer] = {}
    differ = 0
    for system in order:
        if system == "segmenter":
            seg = Segmenter(bench, settings, env)
            done[system] = seg.run(args.events)
            if n == 0:
                differ += compare("segmenter's Redis read model", seg.read_model(), ref.at)
                passed["segmenter"] = seg.day_passes(ref)
                say(f"  a day passes: segmenter published {passed['segmenter'].changes:,} changes in "
                    f"{passed['segmenter'].seconds:.2f} s")
                differ += compare("segmenter's Redis read model, the next day", seg.read_model(), ref.next_day)
                differ += passed["segmenter"].changes != ref.moved
            done[system] = seg.stop(done[system])
        else:
            peers[system] = Peer(bench, settings, name, system)
            done[system] = peers[system].run(args.events)
            if n:
                done[system] = peers[system].stop(done[system])
    if n == 0:
        differ += peer_checks(peers, ref, done, passed)
    for system, run in done.items():
        runs[system].append(run)
    return differ


def peer_checks(peers: dict[str, Peer], ref: Reference, done: dict[str, Run], passed: dict[str, DayPassed]) -> int:
    """Round 0's checks of the peers, after both were timed: the bare one's state by sweeps, then the same one's
    scans (to the last event's day, then the timed one to the next) and its read model after each."""
    bare, same = peers["bare"], peers["same"]
    differ = compare("bare peer's stored state (sweep)", bare.sweep(sorted(ref.at), ref.last), ref.at)
    done["bare"] = bare.stop(done["bare"])
    same.caught_up()  # it read the sweeps too (and answered on its own changes topic)
    first = same.day_passes(ref, ref.day, 0)
    say(f"  the same-job peer's first scan (to the last event's day): {first.seconds:.1f} s, {first.changes:,} "
        "changes of customers no event had re-evaluated")
    differ += compare("same-job peer's Redis read model", same.read_model(), ref.at)
    passed["same"] = same.day_passes(ref, ref.day + 1, ref.moved)
    say(f"  a day passes: the same-job peer's scan published {passed['same'].changes:,} changes in "
        f"{passed['same'].seconds:.2f} s")
    differ += compare("same-job peer's Redis read model, the next day", same.read_model(), ref.next_day)
    differ += passed["same"].changes != ref.moved
    done["same"] = same.stop(done["same"])
    return differ


def table(runs: dict[str, list[Run]], customers: int, version: str, events: int,
          passed: dict[str, DayPassed]) -> None:
    rows: list[tuple[str, Callable[[Run], float], str]] = [
        ("events/s", lambda r: r.events_s, "{:,.0f}"),
        ("CPU seconds", lambda r: r.cpu_s, "{:,.1f}"),
        ("CPU µs per event", lambda r: r.cpu_s / events * 1e6, "{:,.0f}"),
        ("peak RSS MiB", lambda r: r.peak_rss_mib, "{:,.0f}"),
        ("state bytes/customer", lambda r: r.state_bytes / customers, "{:,.0f}"),
        ("change records", lambda r: r.changes, "{:,.0f}")]
    say(f"\nmedian of {len(runs['segmenter'])} round(s), {os.cpu_count()} cores, Quix Streams {version}")
    say(f"{'':30}{'segmenter':>12}{TITLES['same']:>16}{TITLES['bare']:>14}{'vs same':>10}{'vs bare':>10}"
        "   (vs: segmenter's figure over the peer's)")
    for label, of, fmt in rows:
        mine, same, bare = (statistics.median(of(r) for r in runs[system]) for system in SYSTEMS)
        say(f"{label:<30}{fmt.format(mine):>12}{fmt.format(same):>16}{fmt.format(bare):>14}"
            f"{_ratio(mine, same):>10}{_ratio(mine, bare):>10}")
    if passed:
        seg, same = passed["segmenter"], passed["same"]
        say(f"{'a day passes: changes':<30}{seg.changes:>12,}{same.changes:>16,}{'-':>14}")
        say(f"{'  seconds to the last change':<30}{seg.seconds:>12.2f}{same.seconds:>16.2f}{'-':>14}"
            f"{_ratio(seg.seconds, same.seconds):>10}")


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


if __name__ == "__main__":
    sys.exit(main())
