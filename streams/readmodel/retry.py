"""Redis calls retried while Redis is away or busy; refusals that retrying cannot cure are raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.exceptions
from prometheus_client.core import CounterMetricFamily

log = logging.getLogger("segmenter.redis")
T = TypeVar("T")

RETRIES = {"redis_retries": 0}
"""Calls this process retried because Redis was away or busy, in all: the metric
``segmenter_redis_retries_total`` and a field of the worker's and action worker's readiness files."""

# Refusals that go away by themselves: retried like a connection error. Any other ResponseError is about the
# rows written (a sum past 64 bits, a key holding a foreign value): retrying cannot cure it.
TRANSIENT = ("OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS")
# The same refusals as redis-py raises them: it turns these codes into classes and leaves the code out of the text.
TRANSIENT_CLASSES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.OutOfMemoryError,
                     redis.exceptions.ReadOnlyError, redis.exceptions.MasterDownError, redis.exceptions.TryAgainError,
                     redis.exceptions.ClusterDownError)


def transient(exc: Exception) -> bool:
    """Also a refusal met inside a script (``Error running script (...): -OOM command not allowed ...``), and one
    the projection's script passes on for a row (``ROW 3 OOM command not allowed ...``)."""
    if isinstance(exc, TRANSIENT_CLASSES):
        return True
    if not isinstance(exc, redis.exceptions.ResponseError):
        return False
    text = str(exc)
    if text.startswith("ROW "):
        text = text.split(" ", 2)[-1]
    return text.startswith(TRANSIENT) or any(f" -{code} " in text for code in TRANSIENT)


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis call until it succeeds: while Redis is away the caller waits (and its lag grows).
    A refusal that retrying cannot cure is raised."""
    delay = 0.1
    while True:
        try:
            return await call()
        except redis.exceptions.RedisError as exc:
            if not transient(exc):
                raise
            RETRIES["redis_retries"] += 1
            log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def redis_retries() -> CounterMetricFamily:
    """``segmenter_redis_retries_total``, for a worker's or action worker's metrics."""
    family = CounterMetricFamily("segmenter_redis_retries", "Redis calls retried while Redis was away or busy")
    family.add_metric([], RETRIES["redis_retries"])
    return family
