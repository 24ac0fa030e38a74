"""The live phases of bench.stream: latency under a steady load, and time to a restarted worker's first change."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka.partitioner import DefaultPartitioner

from streams.kafka.reading import tail
from streams.kafka.topics import producer
from streams.names import Names
from streams.settings import Settings

START = datetime(2025, 7, 1, tzinfo=UTC)  # the first day of bench.stream's history
HOT = b"HOT0000"  # the one very active customer of the latency phase
WINDOW_S = 5.0  # latency is also reported per this many seconds of the phase: a start-up transient shows


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
                  hot_share: float = 0.05, *, floor: bool = False) -> tuple[list[tuple[float, float]], int]:
    """Events like the history (same customers, same skew, dated just after it) at ``rate``/s for
    ``seconds``, with one very active customer mixed in; latency = produce -> the segment-change that
    names the event. Records go out as one producer batch per partition every few milliseconds, so
    the load generator itself stays cheap. Returns ((seconds into the phase, latency) of every event
    whose change arrived, the hot customer's event count).

    ``floor``: the input topic itself is tailed (for a broker no worker reads from): the broker's own
    produce -> fetch latency under this load, one hop (the worker's path has two: the input in, the
    change out)."""
    names = Names(settings.topic_prefix)
    consumer = await tail(settings, names.transactions if floor else names.segment_changes)
    prod = producer(settings)
    await prod.start()
    partitioner = DefaultPartitioner()
    partitions = list(range(settings.partitions))
    sent: dict[str, float] = {}
    seen: list[tuple[float, float]] = []
    total = int(rate * seconds) + 1
    event = _events(total, customers, hot_share)
    t0 = time.perf_counter()

    async def drain() -> None:
        await _arrivals(consumer, sent, seen, t0)

    try:
        n, hot = 0, 0
        while time.perf_counter() - t0 < seconds:
            target = min(int((time.perf_counter() - t0) * rate), total)
            batches: dict[int, Any] = {}
            now = time.perf_counter()
            while n < target:
                eid, key, value = event(n)
                sent[eid] = now
                hot += key == HOT
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


def _events(total: int, customers: int, hot_share: float) -> Callable[[int], tuple[str, bytes, bytes]]:
    """The phase's nth event: (event id, key, value); the same skew as the history, dated in the day
    after it, a ``hot_share`` of them of the one customer ``HOT``."""
    rng = random.Random(9)
    pool = rng.choices(range(customers), weights=[1 / (i + 1) ** 0.8 for i in range(customers)], k=total)
    day_one = START + timedelta(days=366)

    def event(n: int) -> tuple[str, bytes, bytes]:
        key = HOT if rng.random() < hot_share else f"B{pool[n]:07d}".encode()
        eid, when = f"lat-{n}", (day_one + timedelta(seconds=n * 86400 / total)).isoformat()
        return eid, key, orjson.dumps({"event_id": eid, "customer_id": key.decode(), "occurred_at": when,
                                       "amount": f"{rng.uniform(10, 3000):.2f}", "order_id": eid})

    return event


async def _arrivals(consumer: Any, sent: dict[str, float], seen: list[tuple[float, float]], t0: float) -> None:
    """Match arrived records (segment-changes, or the events themselves) to the events that caused them."""
    for messages in (await consumer.getmany(timeout_ms=0)).values():
        arrived = time.perf_counter()
        for m in messages:
            at = sent.pop(orjson.loads(m.value).get("event_id") or "", None)
            if at is not None:
                seen.append((at - t0, arrived - at))


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """(p50, p99) of ``latencies`` (not empty)."""
    ordered = sorted(latencies)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def by_window(seen: list[tuple[float, float]]) -> list[float]:
    """p99 of the events sent in each ``WINDOW_S`` of the phase, in order (windows with none left out)."""
    windows: dict[int, list[float]] = {}
    for at, took in seen:
        windows.setdefault(int(at // WINDOW_S), []).append(took)
    return [percentiles(windows[w])[1] for w in sorted(windows)]


def own_latency(port: int) -> dict[float, float]:
    """The worker's ``segmenter_own_latency_seconds`` histogram as it stands: bucket bound -> cumulative count."""
    from urllib.request import urlopen  # noqa: PLC0415 - only the latency phase scrapes

    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {float(sample.labels["le"]): sample.value for family in text_string_to_metric_families(text)
            if family.name == "segmenter_own_latency_seconds" for sample in family.samples
            if sample.name.endswith("_bucket")}


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> tuple[float, int]:
    """The ``q`` quantile of what was observed between two scrapes of one histogram, interpolated within its bucket
    as Prometheus' ``histogram_quantile`` does; and how many observations."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0
    if not total:
        return 0.0, 0
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower, int(total)
            return lower + (bound - lower) * (rank - below) / max(cumulative - below, 1e-9), int(total)
        lower, below = bound, cumulative
    return lower, int(total)
