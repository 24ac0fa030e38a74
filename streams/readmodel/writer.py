"""The Redis read model's writer: a projection of the customers table, rebuildable from the topics.

Keys under the prefix ``P`` (the topic prefix without its dot)::

    P:c:<customer>          hash: epoch, seq, segments (JSON), amount_minor, purchases, partition, tags (JSON
                            list, or empty), state (the record)
    P:m:<dim>:<segment>     set of customer ids
    P:t:<tag>               set of the customer ids with the tag
    P:h:<customer>          list: the customer's last changes, newest first ("<change id> <JSON>"), capped at
                            ``story_changes``; a change already listed (a replay) is not added again
    P:amt:<dim>             hash: segment -> summed amount_12m in minor units (exact)
    P:kpi:<dim>             hash: "<segment>\x1fp" -> summed purchases_12m, "<segment>\x1fr" -> members with two
                            purchases or more in the long window (the repurchase rate's numerator); like P:amt, as
                            of each member's last write
    P:customers             set of every customer id
    P:p:<partition>         set of the customer ids of one input partition (``rules preview`` reads them apart)
    P:clock                 hash: partition -> [stream time, business day]
    P:quarantine            hash: customer -> why Redis refused its row (JSON), until a write is accepted
    P:projected             hash: partition -> epoch, once every stored customer of it is projected
    P:mv:<day>              hash: "<dim>\x1f<from>\x1f<to>" -> segment moves on that business day (from "(none)": a
                            first classification), and the same field + "\x1fa" -> the moving customers' summed
                            amount_12m then, in minor units; kept MOVES_KEPT_DAYS days. Counted with the row that
                            carries them (so once per epoch); a new epoch skips the moves its story list shows.
                            The dashboard and ``GET /movement`` read these, never the topic.

The worker writes whole flushes: one Lua call applies up to ``CHUNK`` customers atomically, each only
when its (epoch, seq) is newer than what Redis holds: the epoch is its partition's (taken anew each
time a worker opens the partition), the seq its record's; retries never move the model backwards and
a worker that restarts or takes over a partition always overrides what the previous owner wrote. Readers
(``streams.readmodel.reader``) compute a customer's metrics from ``state`` as of its partition's clock.
A call's counter increments (segment sums, the day's moves) go first, all or nothing, each field's summed over the
chunk while that stays exact: a thousand customers moving between the same two segments cost one increment per
field, not one per customer. (The script touches keys it derives, which standalone Redis allows; Redis Cluster would
need hash tags.)
When Redis comes back empty (or a partition was never projected), the worker projects the partition's
whole store again before its next flush: ``P:projected`` says which partitions are whole.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
import redis.exceptions

from streams.readmodel.retry import retrying
from streams.readmodel.retry import transient as is_transient
from streams.readmodel.rows import ProjectedCustomer, script_args
from streams.readmodel.scripts import APPLY, ERASE
from streams.text import clip

STATS_KEPT_S = 3600  # a worker's counters outlive its last word by this long
STATS_WORKERS = "stats-workers"  # sorted set: worker -> when it last published its counters

log = logging.getLogger("segmenter.projection")
CHUNK = 2000

@dataclass
class Written:
    """What a flush did in Redis: rows newer than what it held (not counting those of a chunk that was
    refused part way, which are written all the same), and rows it refused (with its reason)."""

    applied: int = 0
    quarantined: list[tuple[ProjectedCustomer, str]] = field(default_factory=list)
    unprojected: list[int] = field(default_factory=list)  # of the partitions asked about, those Redis holds none of

    def add(self, more: Written) -> None:
        """Another call's (a flush writes its rows in several)."""
        self.applied += more.applied
        self.quarantined += more.quarantined
        self.unprojected += more.unprojected


class Projection:
    """Writes customers into Redis (used by the worker)."""

    def __init__(self, url: str, prefix: str, keep: int = 5, **options: Any) -> None:
        self.prefix, self.keep = prefix, keep
        self.client = aioredis.from_url(url, **options)
        self._script = self.client.register_script(APPLY)
        self._erase = self.client.register_script(ERASE)

    async def write_many(self, customers: Sequence[ProjectedCustomer],
                         clocks: Mapping[int, tuple[str, int]] | None = None,
                         partitions: Sequence[int] = ()) -> Written:
        """Apply a flush, in one round trip: its chunks of rows, the partitions' clocks, and which of ``partitions``
        Redis holds no projection of (``Written.unprojected``: never written, or Redis lost its data). A chunk Redis
        refuses for good is written again row by row: the rows it still refuses are quarantined (left out, listed
        under ``P:quarantine``), the others written. Sent again whole while Redis is away: a row applies only over
        an older one, and a change already in a story is not added again."""
        chunks = [customers[start : start + CHUNK] for start in range(0, len(customers), CHUNK)]
        argses = [script_args(self.prefix, chunk, self.keep) for chunk in chunks]
        clock_map = {str(p): orjson.dumps(list(v)) for p, v in clocks.items()} if clocks else {}
        marks, results = await retrying(lambda: self._pipelined(argses, clock_map, partitions))
        written = Written(unprojected=[p for p, mark in zip(partitions, marks, strict=True) if mark is None])
        for chunk, result in zip(chunks, results, strict=True):
            if not isinstance(result, redis.exceptions.ResponseError):
                written.applied += int(result)
                continue
            log.error("redis refused a flush chunk of %d customers (%s); writing them one by one",
                      len(chunk), clip(str(result)))
            for customer in chunk:
                try:
                    written.applied += await self._apply([customer])
                except redis.exceptions.ResponseError as row_exc:
                    written.quarantined.append((customer, str(row_exc).removeprefix("ROW 1 ")))
        if written.quarantined:
            await self._quarantine(written.quarantined)
        return written

    async def _pipelined(self, argses: Sequence[list[Any]], clocks: Mapping[str, bytes],
                         partitions: Sequence[int]) -> tuple[list[Any], list[Any]]:
        """One pipeline: the projected marks of ``partitions``, a script call per chunk, the clocks. A chunk's
        refusal comes back as its result; a transient one (Redis loading, out of memory) is raised, so that
        ``retrying`` sends the whole pipeline again."""
        for _ in range(2):
            pipe = self.client.pipeline(transaction=False)
            if partitions:
                pipe.hmget(f"{self.prefix}:projected", [str(p) for p in partitions])
            for args in argses:
                pipe.evalsha(self._script.sha, 0, *args)
            if clocks:
                pipe.hset(f"{self.prefix}:clock", mapping=clocks)
            out = await pipe.execute(raise_on_error=False)
            marks = out[0] if partitions else []
            results = out[1 if partitions else 0 :][: len(argses)]
            failed = [r for r in out if isinstance(r, redis.exceptions.ResponseError)]
            if any(isinstance(r, redis.exceptions.NoScriptError) for r in failed):
                await self.client.script_load(APPLY)  # Redis restarted since the script was loaded
                continue
            transient = next((r for r in failed if is_transient(r) or r not in results), None)
            if transient is not None:
                raise transient
            return marks, results
        raise redis.exceptions.NoScriptError("the apply script is not loaded after loading it")

    async def erase(self, customer_ids: Sequence[str]) -> None:
        """Everything the read model holds of these customers: their hash, memberships, sums, story list."""
        for start in range(0, len(customer_ids), CHUNK):
            args = [self.prefix, *customer_ids[start : start + CHUNK]]
            await retrying(lambda args=args: self._erase(keys=[], args=args))  # type: ignore[misc]

    async def _apply(self, customers: Sequence[ProjectedCustomer]) -> int:
        args = script_args(self.prefix, customers, self.keep)
        return int(await retrying(lambda: self._script(keys=[], args=args)))

    async def _quarantine(self, rows: Sequence[tuple[ProjectedCustomer, str]]) -> None:
        """Each left-out customer with why and when (its state is safe in the changelog: a later write of
        the customer that Redis accepts replaces it, and the entry goes)."""
        for customer, error in rows:
            log.error("quarantined customer %s (partition %d, seq %d): redis refused its row: %s",
                      clip(customer.customer_id), customer.partition, customer.seq, clip(error))
        mapping = {c.customer_id: orjson.dumps({"error": error, "partition": c.partition, "seq": c.seq,
                                                "at": datetime.now(UTC).isoformat()}) for c, error in rows}
        await retrying(lambda: self.client.hset(f"{self.prefix}:quarantine", mapping=mapping))

    async def mark_projected(self, partition: int, epoch: int) -> None:
        await retrying(lambda: self.client.hset(f"{self.prefix}:projected", str(partition), str(epoch)))

    async def release(self, customer_ids: Sequence[str]) -> None:
        """Customers written since they were quarantined: no longer left out."""
        if customer_ids:
            await retrying(lambda: self.client.hdel(f"{self.prefix}:quarantine", *customer_ids))

    async def quarantined(self) -> set[str]:
        return {k.decode() for k in await retrying(lambda: self.client.hkeys(f"{self.prefix}:quarantine"))}

    async def set_counters(self, worker: str, counters: Mapping[str, int]) -> None:
        """This worker's running totals (applied, duplicate, too_old, dead_letters, changes …), kept an hour after
        its last word, and the worker in the index readers list them from (``STATS_WORKERS``: no scan of the keys)."""
        if counters:
            now = time.time()
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(f"{self.prefix}:stats:{worker}", mapping=dict(counters))
            pipe.expire(f"{self.prefix}:stats:{worker}", STATS_KEPT_S)
            pipe.zadd(f"{self.prefix}:{STATS_WORKERS}", {worker: now})
            pipe.zremrangebyscore(f"{self.prefix}:{STATS_WORKERS}", "-inf", now - STATS_KEPT_S)
            await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()
