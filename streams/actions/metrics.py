"""Prometheus metrics of an action worker (``SEGMENTER_METRICS_PORT``), read from its counters when scraped.

``segmenter_actions_total{action,outcome}``: grants issued (``issued``, action ``coupon`` or ``alert``) and
suppressed (outcome ``cooldown``, ``replay`` or ``dwell``, action ``any``), and segment changes seen again
(outcome ``duplicate``: its grant was already made; ``replayed``: read again after a restart).
``segmenter_redis_retries_total``: Redis calls retried while Redis was away or busy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from streams import probes
from streams.probes import Probe
from streams.readmodel.retry import redis_retries


class _ActorCollector(Collector):
    def __init__(self, stats: Mapping[str, int]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("segmenter_actions", "actions issued and suppressed", labels=["action", "outcome"])
        for key, n in sorted(self.stats.items()):
            if key.startswith("issued_"):
                family.add_metric([key.removeprefix("issued_"), "issued"], n)
            elif key.startswith("suppressed_"):
                family.add_metric(["any", key.removeprefix("suppressed_")], n)
            elif key in ("duplicates", "replayed"):
                family.add_metric(["any", key.removesuffix("s")], n)
        yield family
        yield redis_retries()


def serve(stats: Mapping[str, int], probe: Probe, host: str, port: int) -> None:
    """``/metrics``, ``/live`` and ``/ready`` (streams/probes.py)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_ActorCollector(stats))
    probes.serve(registry, probe, host, port)
