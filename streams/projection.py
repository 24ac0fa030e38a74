"""The Redis read model: a projection of the customers table, rebuildable from the topics.

Keys under the prefix ``P`` (the topic prefix without its dot)::

    P:c:<customer>          hash: epoch, seq, segments (JSON), amount_minor, partition, state (the record)
    P:m:<dim>:<segment>     set of customer ids
    P:amt:<dim>             hash: segment -> summed amount_12m in minor units (exact)
    P:customers             set of every customer id
    P:clock                 hash: partition -> [stream time, business day]

The worker writes whole flushes: one Lua call applies up to ``CHUNK`` customers atomically, each only
when its (epoch, seq) is newer than what Redis holds: the epoch is its partition's (taken anew each
time a worker opens the partition), the seq its record's; retries never move the model backwards and
a worker that restarts or takes over a partition always overrides what the previous owner wrote. Readers
(``streams.readmodel``) compute a customer's metrics from ``state`` as of its partition's clock.
(The script touches keys it derives, which standalone Redis allows; Redis Cluster would need hash tags.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import orjson
import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger("segmenter.projection")
T = TypeVar("T")
CHUNK = 2000

_APPLY = """
local prefix = ARGV[1]
local rows = cjson.decode(ARGV[2])
local applied = 0
for i, row in ipairs(rows) do
  local customer, epoch, seq, segs, amount = row[1], tonumber(row[2]), tonumber(row[3]), row[4], tonumber(row[5])
  local key = prefix .. ':c:' .. customer
  local cur = redis.call('HMGET', key, 'epoch', 'seq', 'segments', 'amount_minor')
  local cur_epoch, cur_seq = tonumber(cur[1] or '-1'), tonumber(cur[2] or '-1')
  if epoch > cur_epoch or (epoch == cur_epoch and seq > cur_seq) then
    local old, old_amount = cur[3], tonumber(cur[4] or '0')
    if old ~= segs or old_amount ~= amount then
      if old then
        for dim, seg in pairs(cjson.decode(old)) do
          if old ~= segs then redis.call('SREM', prefix .. ':m:' .. dim .. ':' .. seg, customer) end
          redis.call('HINCRBY', prefix .. ':amt:' .. dim, seg, 0 - old_amount)
        end
      end
      for dim, seg in pairs(cjson.decode(segs)) do
        if old ~= segs then redis.call('SADD', prefix .. ':m:' .. dim .. ':' .. seg, customer) end
        redis.call('HINCRBY', prefix .. ':amt:' .. dim, seg, amount)
      end
    end
    redis.call('HSET', key, 'epoch', row[2], 'seq', row[3], 'segments', segs, 'amount_minor', row[5],
               'partition', row[6], 'state', ARGV[i + 2])
    if not cur[2] then redis.call('SADD', prefix .. ':customers', customer) end
    applied = applied + 1
  end
end
return applied
"""


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis call until it succeeds: while Redis is away the caller waits (and its lag grows)."""
    delay = 0.1
    while True:
        try:
            return await call()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class ProjectedCustomer(NamedTuple):
    customer_id: str
    epoch: int
    seq: int
    segments: dict[str, str]
    amount_minor: int
    partition: int
    state: bytes  # the record as the customers table stores it


def script_args(prefix: str, customers: Sequence[ProjectedCustomer]) -> list[Any]:
    """The apply script's arguments: the prefix, one JSON array of rows, then each customer's record.

    One argument per customer instead of seven: redis-py encodes every argument in Python. Numbers
    travel as text, so Lua stores them as they are (its numbers would print 1e+14 past 14 digits)."""
    rows = [[c.customer_id, str(c.epoch), str(c.seq), orjson.dumps(c.segments).decode(), str(c.amount_minor),
             str(c.partition)] for c in customers]
    return [prefix, orjson.dumps(rows), *(c.state for c in customers)]


class Projection:
    """Writes customers into Redis (used by the worker)."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.client = aioredis.from_url(url)
        self._script = self.client.register_script(_APPLY)

    async def write_many(self, customers: Sequence[ProjectedCustomer],
                         clocks: Mapping[int, tuple[str, int]] | None = None) -> int:
        """Apply a flush; returns how many customers were newer than what Redis held."""
        applied = 0
        for start in range(0, len(customers), CHUNK):
            args = script_args(self.prefix, customers[start : start + CHUNK])
            applied += int(await retrying(lambda a=args: self._script(keys=[], args=a)))
        if clocks:
            mapping = {str(p): orjson.dumps(list(v)) for p, v in clocks.items()}
            await retrying(lambda: self.client.hset(f"{self.prefix}:clock", mapping=mapping))
        return applied

    async def set_counters(self, worker: str, counters: Mapping[str, int]) -> None:
        """This worker's running totals (applied, duplicate, too_old, dead_letters, changes …)."""
        if counters:
            await self.client.hset(f"{self.prefix}:stats:{worker}", mapping=dict(counters))
            await self.client.expire(f"{self.prefix}:stats:{worker}", 3600)

    async def close(self) -> None:
        await self.client.aclose()
