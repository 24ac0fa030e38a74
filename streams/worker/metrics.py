"""Prometheus metrics of a worker (``SEGMENTER_METRICS_PORT``; the official client). Counters and gauges are read
from the engine when scraped; the hot path adds a count per fetched batch and per change, and two histograms, observed
once per fetched batch that produced changes and once per flush.

=========================================== ===========================================================================
name                                        what
=========================================== ===========================================================================
``segmenter_events_total{topic}``           input records processed, per input topic
``segmenter_event_outcomes_total{outcome}`` events applied, duplicate (an event id seen before) or too_old
``segmenter_dead_letters_total{reason}``    records sent to the dead-letter topic: bad_input, processing_error,
                                            wrong_partition
``segmenter_misrouted_total{topic}``        input records on another partition than their customer's (rerouted or
                                            dead-lettered, by SEGMENTER_WRONG_PARTITION: streams/worker/routing.py)
``segmenter_changes_total{kind,name,cause}`` segment changes (kind segment, name = dimension) and tag changes
                                            (kind tag, name = the tag), per cause
``segmenter_rules_pending_customers{p}``    customers still to re-evaluate under the ruleset adopted last (a rules
                                            change over many customers goes in steps; 0 when done)
``segmenter_due_customers{partition}``      customers in the due index (time alone may move them)
``segmenter_overdue_customers{partition}``  of them, due on or before the partition's day and not yet woken
``segmenter_stream_time_behind_seconds``    wall clock minus the partition's stream time (freshness)
``segmenter_consumer_lag{topic,partition}`` records of an input partition not yet committed by the group
``segmenter_processing_latency_seconds``    from the broker timestamp of the oldest record of a fetched batch that
                                            produced changes to those changes being handed to the producer
``segmenter_own_latency_seconds``           segmenter's own part of it: from a fetched batch handed to the worker to
                                            its changes handed to the producer (the broker's hops left out)
``segmenter_flush_duration_seconds``        one flush: encode, wait for changes, Redis, changelog, commit
``segmenter_population_ranked``             customers the population ranks in force count (ABC, RFM)
``segmenter_redis_retries_total``           Redis calls retried while Redis was away or busy
=========================================== ===========================================================================
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams import probes
from streams.probes import Probe
from streams.readmodel.retry import redis_retries
from streams.settings import Settings
from streams.worker.partition import Partition
from streams.worker.routing import Router


class Observed(Protocol):
    """What the metrics read of the engine when scraped."""

    stats: Counter[str]
    router: Router
    parts: dict[int, Partition]

OUTCOMES = ("applied", "duplicate", "too_old")
OWN_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class WorkerMetrics:
    """The worker's registry: its two histograms, the per-topic and per-change counts the engine keeps, and the
    last consumer lag read (``lag``: (topic, partition) -> records)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram("segmenter_processing_latency_seconds", "arrival (broker timestamp) to the segment "
                                 "change handed to the producer, per fetched batch that produced changes",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                                 registry=self.registry)
        self.own = Histogram("segmenter_own_latency_seconds", "segmenter's own part: a fetched batch handed to the "
                             "worker to its changes handed to the producer, per batch that produced changes",
                             buckets=OWN_BUCKETS, registry=self.registry)
        self.flush = Histogram("segmenter_flush_duration_seconds", "one flush, from snapshot to commit",
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30), registry=self.registry)
        self.events: Counter[str] = Counter()
        self.changes: Counter[tuple[str, str, str]] = Counter()
        self.lag: dict[tuple[str, int], int] = {}

    def serve(self, engine: Observed, probe: Probe, host: str, port: int) -> None:
        """``/metrics``, ``/live`` and ``/ready`` (streams/probes.py)."""
        self.registry.register(_EngineCollector(engine, self))
        probes.serve(self.registry, probe, host, port)


class _EngineCollector(Collector):
    def __init__(self, engine: Observed, metrics: WorkerMetrics) -> None:
        self.engine, self.metrics = engine, metrics

    def collect(self) -> Iterator[Metric]:
        engine, metrics = self.engine, self.metrics
        stats = engine.stats
        events = CounterMetricFamily("segmenter_events", "input records processed", labels=["topic"])
        for topic, n in sorted(metrics.events.items()):
            events.add_metric([topic], n)
        yield events
        outcomes = CounterMetricFamily("segmenter_event_outcomes", "events by what they did", labels=["outcome"])
        for outcome in OUTCOMES:
            outcomes.add_metric([outcome], stats.get(outcome, 0))
        yield outcomes
        letters = CounterMetricFamily("segmenter_dead_letters", "records sent to dead letters", labels=["reason"])
        letters.add_metric(["bad_input"], stats.get("dead_letters", 0))
        letters.add_metric(["processing_error"], stats.get("processing_errors", 0))
        letters.add_metric(["wrong_partition"], stats.get("wrong_partition", 0))
        yield letters
        misrouted = CounterMetricFamily("segmenter_misrouted", "input records found on another partition than "
                                        "murmur2 of their customer id gives", labels=["topic"])
        for topic, n in sorted(engine.router.count.items()):
            misrouted.add_metric([topic], n)
        yield misrouted
        changes = CounterMetricFamily("segmenter_changes", "segment and tag changes", labels=["kind", "name", "cause"])
        for key, n in sorted(metrics.changes.items()):
            changes.add_metric(list(key), n)
        yield changes
        due = GaugeMetricFamily("segmenter_due_customers", "customers in the due index", labels=["partition"])
        overdue = GaugeMetricFamily("segmenter_overdue_customers", "due on or before the partition's day, not yet "
                                    "woken", labels=["partition"])
        behind = GaugeMetricFamily("segmenter_stream_time_behind_seconds", "wall clock minus stream time",
                                   labels=["partition"])
        now = datetime.now(UTC)
        pending = GaugeMetricFamily("segmenter_rules_pending_customers", "customers still to re-evaluate under the "
                                    "ruleset the partition adopted last", labels=["partition"])
        for number, part in sorted(engine.parts.items()):
            label = [str(number)]
            todo = part.reevaluating
            pending.add_metric(label, len(todo.left) if todo is not None else 0)
            due.add_metric(label, len(part.dues))
            overdue.add_metric(label, _overdue(part))
            if part.stream_time is not None:
                behind.add_metric(label, (now - part.stream_time).total_seconds())
        yield pending
        yield due
        yield overdue
        yield behind
        lag = GaugeMetricFamily("segmenter_consumer_lag", "records not yet committed by the worker group",
                                labels=["topic", "partition"])
        for (topic, partition), n in sorted(metrics.lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        ranked = GaugeMetricFamily("segmenter_population_ranked", "customers the population ranks in force count")
        ranked.add_metric([], stats.get("population_total", 0))
        yield ranked
        yield redis_retries()


def _overdue(part: Partition) -> int:
    """Due entries on or before the partition's day. Called from the metrics server's thread while the engine
    changes ``part.dues``: the heap's head (read at once) tells whether any is due, and only then are the dues
    copied (in one call, which no other thread interleaves) and counted."""
    day, heap = part.day, part.heap
    try:
        head = heap[0][0]
    except IndexError:  # empty (or emptied meanwhile)
        return 0
    if day is None or head > day:
        return 0
    return sum(1 for d in list(part.dues.values()) if d <= day)


async def read_lag(metrics: WorkerMetrics, settings: Settings, group: str, topics: frozenset[str]) -> None:
    """The worker group's lag per input partition, for the metrics (a timer)."""
    from streams.kafka.lag import group_lag  # noqa: PLC0415 - the admin client only where metrics are served

    lags = await group_lag(settings, actions=False, only=group)
    metrics.lag = {(lag.tp.topic, lag.tp.partition): lag.lag for lag in lags if lag.tp.topic in topics}


def observe_own(metrics: WorkerMetrics | None, since: float) -> None:
    """A batch that produced changes: ``since`` (``time.perf_counter()`` when the worker was handed it) to now."""
    if metrics is not None:
        metrics.own.observe(time.perf_counter() - since)


def observe_batch(metrics: WorkerMetrics | None, oldest_ms: int | None) -> None:
    if metrics is not None and oldest_ms:
        metrics.latency.observe(max(0.0, time.time() - oldest_ms / 1000))
