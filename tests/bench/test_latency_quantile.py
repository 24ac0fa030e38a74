"""bench.live's quantile of a histogram between two scrapes, as Prometheus' ``histogram_quantile`` reads one."""

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench.live import histogram_quantile


def _scrape(registry: CollectorRegistry) -> dict[float, float]:
    text = generate_latest(registry).decode()
    return {float(s.labels["le"]): s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name.endswith("_bucket")}


def test_only_what_was_observed_between_the_scrapes_counts_interpolated_within_its_bucket() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("own", "x", buckets=(0.001, 0.002, 0.005, 0.01), registry=registry)
    for _ in range(1000):
        histogram.observe(0.5)  # before the phase: left out
    before = _scrape(registry)
    for _ in range(98):
        histogram.observe(0.0015)  # in (0.001, 0.002]
    for _ in range(2):
        histogram.observe(0.007)  # in (0.005, 0.01]
    after = _scrape(registry)
    p50, n = histogram_quantile(0.5, before, after)
    assert n == 100
    assert p50 == pytest.approx(0.001 + 0.001 * 50 / 98)
    p99, _ = histogram_quantile(0.99, before, after)
    assert 0.005 < p99 <= 0.01
    assert histogram_quantile(0.5, after, after) == (0.0, 0)
