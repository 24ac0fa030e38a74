"""Workers' counters are listed from an index of the workers (``STATS_WORKERS``), not by scanning every key of the
read model: one that stopped publishing an hour ago leaves both, and its expired counters are not listed meanwhile."""

from __future__ import annotations

import asyncio
import time

import redis

from streams.names import Names
from streams.readmodel.reader import ReadModel
from streams.readmodel.writer import STATS_KEPT_S, STATS_WORKERS, Projection


def test_counters_come_from_the_index_of_workers(system):
    settings = system.settings
    prefix = Names(settings.topic_prefix).redis
    client = redis.Redis.from_url(settings.redis_url)

    async def publish(worker: str, counters: dict[str, int]) -> None:
        projection = Projection(settings.redis_url, prefix, 5, **settings.redis_options())
        try:
            await projection.set_counters(worker, counters)
        finally:
            await projection.close()

    asyncio.run(publish("host:1", {"applied": 3}))
    asyncio.run(publish("host:2", {"applied": 5, "changes": 1}))
    asyncio.run(publish("host:1", {"applied": 4}))  # its latest word
    model = ReadModel.of(settings)
    assert model.counters() == {"host:1": {"applied": 4}, "host:2": {"applied": 5, "changes": 1}}
    client.set(f"{prefix}:stats:not-a-worker", "1")  # a key of the pattern, never published: not scanned for
    client.delete(f"{prefix}:stats:host:2")  # its counters expired, its index entry not yet gone
    assert model.counters() == {"host:1": {"applied": 4}}
    client.zadd(f"{prefix}:{STATS_WORKERS}", {"host:3": time.time() - STATS_KEPT_S - 1})  # an hour silent
    asyncio.run(publish("host:1", {"applied": 6}))  # a publish drops index entries older than the hour
    assert client.zscore(f"{prefix}:{STATS_WORKERS}", "host:3") is None
    assert model.counters() == {"host:1": {"applied": 6}}
