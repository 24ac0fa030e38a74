"""The Redis read model: a projection of the customers table, rebuildable from the topics.

Keys under the prefix ``P`` (the topic prefix without its dot)::

    P:c:<customer>          hash: seq, segments (JSON), amount_minor, doc (JSON: metrics, ruleset, due)
    P:m:<dim>:<segment>     set of customer ids
    P:amt:<dim>             hash: segment -> summed amount_12m in minor units (exact)
    P:customers             set of every customer id

One Lua script applies a customer's new state atomically and only when its ``seq`` is newer, so
replays, rebalances and retries never move the model backwards. (The script touches keys it
derives, which standalone Redis allows; Redis Cluster would need hash tags.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger("segmenter.projection")

_APPLY = """
local seq = tonumber(ARGV[1])
local cur = redis.call('HGET', KEYS[1], 'seq')
if cur and tonumber(cur) >= seq then return 0 end
local prefix, customer = ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[1], 'segments')
local old_amount = tonumber(redis.call('HGET', KEYS[1], 'amount_minor') or '0')
if old then
  for dim, seg in pairs(cjson.decode(old)) do
    redis.call('SREM', prefix .. ':m:' .. dim .. ':' .. seg, customer)
    redis.call('HINCRBY', prefix .. ':amt:' .. dim, seg, 0 - old_amount)
  end
end
local amount = tonumber(ARGV[5])
for dim, seg in pairs(cjson.decode(ARGV[4])) do
  redis.call('SADD', prefix .. ':m:' .. dim .. ':' .. seg, customer)
  redis.call('HINCRBY', prefix .. ':amt:' .. dim, seg, amount)
end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'segments', ARGV[4], 'amount_minor', ARGV[5], 'doc', ARGV[6])
redis.call('SADD', prefix .. ':customers', customer)
return 1
"""


class Projection:
    """Writes customers into Redis (used by the worker)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.client = aioredis.from_url(url)
        self._script = self.client.register_script(_APPLY)

    async def write(self, customer_id: str, seq: int, segments: Mapping[str, str], amount_minor: int,
                    doc: Mapping[str, Any]) -> bool:
        args = [seq, self.prefix, customer_id, orjson.dumps(dict(segments) or {}).decode(),
                amount_minor, orjson.dumps(doc, default=str).decode()]
        delay = 0.1
        while True:
            try:
                applied = await self._script(keys=[f"{self.prefix}:c:{customer_id}"], args=args)
                return bool(applied)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                # Redis away: wait and retry; the event is not committed until this succeeds.
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def set_clock(self, partition: int, when: Any, day: int) -> None:
        """Publish a partition's stream time, so readers can age time-relative metrics."""
        await self.client.hset(f"{self.prefix}:clock", str(partition), orjson.dumps([str(when), day]))

    async def set_counters(self, worker: str, counters: Mapping[str, int]) -> None:
        """This worker's running totals (applied, duplicate, too_old, dead_letters, changes …)."""
        if counters:
            await self.client.hset(f"{self.prefix}:stats:{worker}", mapping=dict(counters))
            await self.client.expire(f"{self.prefix}:stats:{worker}", 3600)

    async def close(self) -> None:
        await self.client.aclose()
