"""Redis calls retried while Redis is away or busy; refusals that retrying cannot cure are raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.exceptions

log = logging.getLogger("segmenter.redis")
T = TypeVar("T")

# Refusals that go away by themselves: retried like a connection error. Any other ResponseError is about the
# rows written (a sum past 64 bits, a key holding a foreign value): retrying cannot cure it.
TRANSIENT = ("OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS")


def transient(exc: Exception) -> bool:
    return isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError) or (
        isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(TRANSIENT))


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
            log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
