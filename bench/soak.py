"""``make soak``: the stack under kills, outages and hostile input; one table at the end.

On a fresh embedded broker and Redis (started here):

* a year of purchases of ``--customers`` customers, ``--events`` in all, with 10 % of them sent twice and
  10 % delivered late and out of order, and a hostile corpus (``bench/hostile.py``, every kind in turn)
  mixed into the stream; all produced up front, so the workers run under a full backlog;
* the worker SIGKILLed every 20-30 s and restarted, alternately on its own data directory and on an empty
  one (recovery from the changelog), until the group has committed everything (at most ``--kill-seconds``);
* Redis SIGKILLed once under load, away for ``--redis-outage-s``, then started again empty;
* the action worker killed by its failpoint between a grant and its ledger write, then restarted.

At the end: ``segmenter export`` against ``segmenter classify`` of the good records, every column; every
hostile record in dead letters (matched by source topic, partition and offset) and nothing else there;
each entry into churn_risk / high_value with exactly one grant or one cooldown suppression, and no grant
twice; peak RSS of the workers. The command exits 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from bench.cpu import rss_mib
from bench.hostile import corpus
from schemas.outputs import CHANGE_ADAPTER, ActionSuppressed, Alert, Coupon, DeadLetter, SegmentChange
from segmenter.rules import load_ruleset
from streams.cli.main import main as cli
from streams.cli.ops import OpsError, export, wait_caught_up
from streams.kafka.control import apply_rules
from streams.kafka.lag import group_lag
from streams.kafka.reading import read_topic, true_ends
from streams.kafka.topics import create_topics
from streams.names import Names
from streams.settings import Settings
from streams.stack.embedded import free_port, start_broker, start_redis, stop
from streams.stack.processes import EMBEDDED_ENV, spawn_worker, wait_ready

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "examples/rules/retail-value.yaml"
START = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
AS_OF = "2025-12-31"
STEADY_START = datetime(2020, 1, 1, tzinfo=UTC)


def say(text: str) -> None:
    print(text, flush=True)


class Peak(threading.Thread):
    """The largest RSS any of the watched processes reached (sampled every 0.5 s)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.pids: set[int] = set()
        self.peak = 0.0
        self.running = True

    def run(self) -> None:
        while self.running:
            for pid in list(self.pids):
                self.peak = max(self.peak, rss_mib(pid))
            time.sleep(0.5)


def good_events(customers: int, events: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 0.8 for i in range(customers)]
    picks = rng.choices(range(customers), weights=weights, k=events)
    out = []
    for n, c in enumerate(picks):
        when = START + timedelta(seconds=n * 364 * 86400 / events)
        out.append({"event_id": f"s{n}", "customer_id": f"S{c:06d}", "occurred_at": when.isoformat(),
                    "kind": "refund" if rng.random() < 0.03 else "purchase",
                    "amount": f"{rng.uniform(10, 3000):.2f}", "order_id": f"o{n}"})
    return out


def stream_of(events: list[dict[str, str]], hostile: int, seed: int,
              ) -> list[tuple[str | None, bytes | None, bytes | None]]:
    """(hostile kind or None, key, value) in sending order: 10 % of the events delivered late (up to 5 % of
    the stream later, so out of order), 10 % sent twice (the copy later), the corpus mixed in anywhere."""
    rng = random.Random(seed)
    span = max(1, len(events) // 20)
    keyed: list[tuple[float, str | None, bytes | None, bytes | None]] = []
    for i, event in enumerate(events):
        key, value = event["customer_id"].encode(), orjson.dumps(event)
        late = rng.random() < 0.10
        keyed.append((i + rng.randint(1, span) + 0.5 if late else i, None, key, value))
        if rng.random() < 0.10:
            keyed.append((i + rng.randint(1, span) + 0.25, None, key, value))
    ids = sorted({e["customer_id"] for e in events})
    for kind, key, value in corpus(ids, hostile, seed):
        keyed.append((rng.uniform(0, len(events)), kind, key, value))
    keyed.sort(key=lambda r: r[0])
    return [(kind, key, value) for _, kind, key, value in keyed]


async def produce(settings: Settings, topic: str, stream: list[tuple[str | None, bytes | None, bytes | None]],
                  ) -> list[tuple[str, int, int]]:
    """Send every record; returns (kind, partition, offset) of each hostile one."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20, acks="all",
                                max_batch_size=1 << 20, max_request_size=4 << 20)
    await producer.start()
    pending: list[tuple[str, asyncio.Future]] = []
    try:
        for kind, key, value in stream:
            future = await producer.send(topic, key=key, value=value)
            if kind is not None:
                pending.append((kind, future))
        await producer.flush()
        return [(kind, (m := await f).partition, m.offset) for kind, f in pending]
    finally:
        await producer.stop()


class Soak:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args, self.root = args, root
        self.broker_port, self.redis_port = free_port(), free_port()
        self.env = {"SEGMENTER_KAFKA_BOOTSTRAP": f"127.0.0.1:{self.broker_port}",
                    "SEGMENTER_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                    "SEGMENTER_DATA_DIR": str(root / "own"), "SEGMENTER_CLOCK": "event",
                    "SEGMENTER_PARTITIONS": "8", "SEGMENTER_TOPIC_PREFIX": "soak.",
                    "SEGMENTER_ACTIONS_REPLAY_HORIZON": "0d", "SEGMENTER_WEB_PORT": str(free_port()),
                    **EMBEDDED_ENV}
        os.environ.update(self.env)
        self.settings = Settings()
        self.names = Names(self.settings.topic_prefix)
        self.peak = Peak()
        self.kills = self.restarts = 0
        self.unexpected: list[str] = []
        self.redis: subprocess.Popen[bytes] | None = None
        # Each restart is the same worker again (like a StatefulSet pod): with a static group member id it
        # takes its partitions back at once instead of waiting out its dead predecessor's session.
        self.static = {"instance_id": "soak-worker-0"} if args.static else {}

    def worker(self, data_dir: Path, role: str = "worker", **extra: str) -> subprocess.Popen[bytes]:
        env = {**self.env, "SEGMENTER_DATA_DIR": str(data_dir),
               **{f"SEGMENTER_{k.upper()}": v for k, v in extra.items()}}
        process = spawn_worker(Settings(**{k.removeprefix("SEGMENTER_").lower(): v for k, v in env.items()}), env,
                               role=role)
        self.peak.pids.add(process.pid)
        return process

    def committed(self) -> tuple[int, int]:
        lags = asyncio.run(group_lag(self.settings, actions=False))
        return sum(lag.committed for lag in lags), sum(lag.end for lag in lags)

    def redis_outage(self, after_s: float) -> None:
        if self.args.redis_outage_s <= 0:
            return
        time.sleep(after_s)
        assert self.redis is not None
        os.kill(self.redis.pid, signal.SIGKILL)
        self.redis.wait()
        say(f"  redis killed; away for {self.args.redis_outage_s:.0f} s")
        time.sleep(self.args.redis_outage_s)
        self.redis = start_redis(self.redis_port, self.root / "redis-2")  # a new, empty one
        say("  redis back, empty")

    def run(self) -> int:
        broker = start_broker(self.broker_port, self.root / "logs")
        self.redis = start_redis(self.redis_port, self.root / "redis-1")
        self.peak.start()
        try:
            return self._scenario()
        finally:
            self.peak.running = False
            for pid in list(self.peak.pids):  # workers are disposable here: no graceful stop to wait for
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stop(self.redis.pid if self.redis else None)
            stop(broker.pid)

    def _scenario(self) -> int:  # noqa: PLR0915 - one scenario, told in order
        args, settings, names = self.args, self.settings, self.names
        events = good_events(args.customers, args.events, args.seed)
        good_csv = self.root / "good.csv"
        with good_csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(events[0]))
            writer.writeheader()
            writer.writerows(events)
        stream = stream_of(events, args.hostile, args.seed)
        asyncio.run(create_topics(settings))
        asyncio.run(apply_rules(settings, load_ruleset(RULES.read_text(), str(RULES)), str(RULES)))
        t0 = time.monotonic()
        hostile = asyncio.run(produce(settings, names.transactions, stream))
        say(f"produced {len(stream):,} records in {time.monotonic() - t0:.1f} s: {len(events):,} good, "
            f"{len(stream) - len(events) - len(hostile):,} copies, {len(hostile):,} hostile of "
            f"{len({k for k, _, _ in hostile})} kinds")

        actions = (self.worker(self.root / "actions", role="actions", failpoint=f"after-grant:{args.grant_kill}")
                   if args.action_worker else None)
        outage = threading.Thread(target=self.redis_outage, args=(args.redis_after_s,), daemon=True)
        started = time.monotonic()
        outage.start()
        n = 0
        while True:
            data_dir = self.root / ("own" if n % 2 == 0 else f"empty-{n}")
            worker = self.worker(data_dir, **self.static)
            self.restarts += n > 0
            life = random.Random(n).uniform(*args.kill_life_s)
            deadline = time.monotonic() + life
            done = False
            while time.monotonic() < deadline:
                time.sleep(1)
                if worker.poll() is not None:
                    self.unexpected.append(f"worker {n} exited with {worker.returncode}")
                    break
                if actions is not None and actions.poll() is not None:
                    died = actions.returncode
                    self.unexpected += [] if died == -signal.SIGKILL else [f"action worker exited with {died}"]
                    say(f"  action worker died ({died}, its failpoint after a grant); restarted")
                    actions = self.worker(self.root / "actions", role="actions")
                committed, end = self.committed()
                if committed >= end:
                    done = True
                    break
            committed, end = self.committed()
            elapsed = time.monotonic() - started
            if done or elapsed > args.kill_seconds:
                say(f"  {elapsed:6.0f} s: committed {committed:,} of {end:,}; kills stop here")
                break
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            self.peak.pids.discard(worker.pid)
            self.kills += 1
            say(f"  {elapsed:6.0f} s: kill {self.kills} ({'own' if n % 2 == 0 else 'empty'} dir, "
                f"{life:.0f} s life); committed {committed:,} of {end:,}")
            n += 1
        outage.join()
        if worker.poll() is not None:  # the last one was killed: one more, left alone
            worker = self.worker(self.root / "own", **self.static)
            self.restarts += 1
        wait_ready(self.root / "own" if n % 2 == 0 else self.root / f"empty-{n}", worker, timeout_s=300)
        assert cli(["tick", "--to", f"{AS_OF}T23:59:59+00:00"]) == 0
        while True:  # the action worker's failpoint may come after the kills: restarted, and waited for again
            try:
                running = [worker] + ([actions] if actions is not None else [])
                asyncio.run(wait_caught_up(settings, args.finish_timeout_s, actions=actions is not None,
                                           alive=lambda procs=running: all(p.poll() is None for p in procs)))
                break
            except OpsError:
                if worker.poll() is not None or actions is None or actions.poll() != -signal.SIGKILL:
                    raise
                say("  action worker died (its failpoint after a grant); restarted")
                actions = self.worker(self.root / "actions", role="actions")
        elapsed = time.monotonic() - started
        self.unexpected += [f"worker exited with {worker.returncode}"] if worker.poll() is not None else []
        return self._verdict(hostile, good_csv, elapsed, len(stream))

    def _verdict(self, hostile: list[tuple[str, int, int]], good_csv: Path, elapsed: float, records: int) -> int:
        settings, names = self.settings, self.names
        out = io.StringIO()
        export(settings, out, "csv", None, None)
        got = {row["customer_id"]: row for row in csv.DictReader(io.StringIO(out.getvalue()))}
        classified = self.root / "classify.csv"
        assert cli(["classify", "--rules", str(RULES), "--transactions", str(good_csv), "--as-of", AS_OF,
                    "--out", str(classified), "--quiet"]) == 0
        with classified.open() as handle:
            expected = {row["customer_id"]: row for row in csv.DictReader(handle)}
        mismatched = sum(1 for c, row in expected.items() if got.get(c) != row) + len(got.keys() - expected.keys())

        letters = [DeadLetter.model_validate_json(v) for _, v in asyncio.run(read_topic(settings, names.dead_letters))]
        at = {(d.source_topic, d.partition, d.offset) for d in letters}
        sent = {(names.transactions, p, o) for _, p, o in hostile}
        missing_letters = len(sent - at)
        extra_letters = len(at - sent)

        digest = hashlib.blake2b(digest_size=8)  # of the input as the broker holds it: runs compare
        for key, value in asyncio.run(read_topic(settings, names.transactions)):
            digest.update(key or b"")
            digest.update(value or b"")
        entries: dict[str, str] = {}  # change id -> where it is, for the lines that name a missing grant
        changes = asyncio.run(read_topic(settings, names.segment_changes))
        on_topic = sum(asyncio.run(true_ends(settings, [names.segment_changes])).values())
        unread = on_topic - len(changes)  # the checks below are only as good as this read
        for _, value in changes:
            change = CHANGE_ADAPTER.validate_json(value)
            if not isinstance(change, SegmentChange):
                continue
            if change.dimension == "value" and change.from_segment != change.to_segment and change.to_segment in (
                    "churn_risk", "high_value"):
                entries[change.change_id] = f"{change.customer_id} -> {change.to_segment} at {change.stream_time}"
        grants = [Coupon.model_validate_json(v).change_id for _, v in asyncio.run(read_topic(settings, names.coupons))]
        grants += [Alert.model_validate_json(v).change_id for _, v in asyncio.run(read_topic(settings, names.alerts))]
        audits = {ActionSuppressed.model_validate_json(v).change_id
                  for _, v in asyncio.run(read_topic(settings, names.action_audit))}
        twice = sum(1 for _, count in Counter(grants).items() if count > 1)
        missing = sorted(entries.keys() - set(grants) - audits) if self.args.action_worker else []
        missing_grants = len(missing)

        rows = [("records sent (good + copies + hostile)", f"{records:,} (as stored: {digest.hexdigest()})"),
                ("good events", f"{self.args.events:,}"),
                ("time to everything committed", f"{elapsed:,.0f} s"),
                ("worker kills (SIGKILL)", f"{self.kills}"), ("worker restarts", f"{self.restarts}"),
                ("unexpected stops", f"{len(self.unexpected)}" + (f" ({'; '.join(self.unexpected)})"
                                                                  if self.unexpected else "")),
                ("customers: export vs classify mismatched", f"{mismatched:,} of {len(expected):,}"),
                ("dead letters / hostile records sent", f"{len(at):,} / {len(sent):,} (missing {missing_letters}, "
                                                        f"extra {extra_letters})"),
                ("segment changes read / on the topic", f"{len(changes):,} / {on_topic:,}"),
                ("entries into churn_risk / high_value", f"{len(entries):,}"),
                ("grants issued twice", f"{twice}" if self.args.action_worker else "(no action worker)"),
                ("entries with no grant and no suppression",
                 (f"{missing_grants}" + "".join(f"; {i} ({entries[i]})" for i in missing[:5]))
                 if self.args.action_worker else "(no action worker)"),
                ("peak worker RSS", f"{self.peak.peak:,.0f} MiB")]
        say("")
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            say(f"{key:<{width}}  {value}")
        failed = unread or mismatched or missing_letters or extra_letters or twice or missing_grants or self.unexpected
        say("\nsoak: " + ("FAILED" if failed else "passed"))
        return 1 if failed else 0


def steady(args: argparse.Namespace, root: Path) -> int:
    """One worker under a steady load for ``--steady-minutes``: its RSS each minute, flat or not."""
    soak = Soak(args, root)
    broker = start_broker(soak.broker_port, root / "logs")
    soak.redis = start_redis(soak.redis_port, root / "redis-1")
    worker = None
    try:
        asyncio.run(create_topics(soak.settings))
        asyncio.run(apply_rules(soak.settings, load_ruleset(RULES.read_text(), str(RULES)), str(RULES)))
        worker = soak.worker(root / "own")
        wait_ready(root / "own", worker, timeout_s=120)
        samples = asyncio.run(_steady_load(soak, worker, args))
    finally:
        if worker is not None and worker.poll() is None:
            stop(worker.pid)
        stop(soak.redis.pid)
        stop(broker.pid)
    say(f"\nRSS at start {samples[0]:,.0f} MiB, middle {samples[len(samples) // 2]:,.0f} MiB, "
        f"end {samples[-1]:,.0f} MiB ({len(samples)} samples, one a minute)")
    return 0 if worker is not None and worker.returncode in (None, 0, -signal.SIGTERM) else 1


async def _steady_load(soak: Soak, worker: subprocess.Popen[bytes], args: argparse.Namespace) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=soak.settings.kafka_bootstrap, linger_ms=50, acks="all")
    await producer.start()
    rng, samples = random.Random(args.seed), [rss_mib(worker.pid)]
    weights = [1 / (i + 1) ** 0.8 for i in range(args.customers)]
    started, sent, minute = time.monotonic(), 0, 1
    try:
        while (elapsed := time.monotonic() - started) < args.steady_minutes * 60:
            if worker.poll() is not None:
                say(f"  the worker exited with {worker.returncode}")
                break
            due = int(elapsed * args.rate) - sent
            for c in rng.choices(range(args.customers), weights=weights, k=max(due, 0)):
                # stream time: 60 s per event from 2020 on, so the windows are full (a year) after ~525,000 events
                # and the state stops growing; 20 minutes at 2,000/s end in mid-2024
                when = STEADY_START + timedelta(seconds=sent * 60)
                doc = {"event_id": f"t{sent}", "customer_id": f"S{c:06d}", "occurred_at": when.isoformat(),
                       "amount": f"{rng.uniform(10, 3000):.2f}", "order_id": f"o{sent}"}
                await producer.send(soak.names.transactions, key=doc["customer_id"].encode(), value=orjson.dumps(doc))
                sent += 1
            if elapsed >= minute * 60:
                samples.append(rss_mib(worker.pid))
                committed = await _committed(soak.settings)
                say(f"  {minute:3d} min: {sent:,} events sent, {committed:,} committed, worker RSS "
                    f"{samples[-1]:,.0f} MiB")
                minute += 1
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
    samples.append(rss_mib(worker.pid))
    return samples


async def _committed(settings: Settings) -> int:
    return sum(lag.committed for lag in await group_lag(settings, actions=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--hostile", type=int, default=1_050)
    parser.add_argument("--kill-seconds", type=float, default=600.0, help="stop killing after this long")
    parser.add_argument("--kill-life-s", type=lambda t: tuple(float(x) for x in t.split(",")), default=(20.0, 30.0),
                        help="each worker lives a random time in this range before its SIGKILL (default 20,30)")
    parser.add_argument("--redis-after-s", type=float, default=45.0, help="when Redis is killed")
    parser.add_argument("--redis-outage-s", type=float, default=30.0, help="0: no outage")
    parser.add_argument("--grant-kill", type=int, default=25, help="the action worker dies after this grant")
    parser.add_argument("--no-action-worker", dest="action_worker", action="store_false",
                        help="run no action worker (and check no grants)")
    parser.add_argument("--no-static", dest="static", action="store_false",
                        help="restart workers without a static group member id (SEGMENTER_INSTANCE_ID)")
    parser.add_argument("--finish-timeout-s", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    parser.add_argument("--steady-minutes", type=float, default=0.0,
                        help="instead: one worker under a steady --rate for this long, its RSS each minute")
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s of --steady-minutes")
    args = parser.parse_args(argv)
    run = (lambda root: steady(args, root)) if args.steady_minutes else (lambda root: Soak(args, root).run())
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        return run(args.dir)
    with tempfile.TemporaryDirectory(prefix="segmenter-soak-") as root:
        return run(Path(root))


if __name__ == "__main__":
    sys.exit(main())
