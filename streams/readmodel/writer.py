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
from streams.text import clip

log = logging.getLogger("segmenter.projection")
CHUNK = 2000

_APPLY = """
local prefix, keep, moves_ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local SEP = string.char(31)  -- the unit separator of a movement field: dimension, from, to
-- The rows, one flat array (``streams.readmodel.rows.script_args``): per row its ten fields (customer, epoch, seq,
-- segments JSON, amount, partition, tags JSON or '', purchases, story entries n, moves n), then n story entries of
-- two (change id, entry) and n moves of six (change id, day, dimension, from, to, amount); the n-th row's record is
-- ARGV[4 + n]. Flat, the decoding builds one table for the call instead of five a row.
local rows = cjson.decode(ARGV[4])
-- Three passes: every row read and decided; then every counter increment, all or nothing; then the rest. Amounts
-- travel as text (Lua's numbers are doubles, Redis' counters 64-bit integers): the chunk's increments of one hash
-- field are summed here while that stays exact (texts of 15 characters at most, sums below 2^52) and sent once, so
-- a chunk of customers moving between the same segments costs one increment per field, not one per customer.
local EXACT = 4503599627370496
local function negated(text)
  if string.sub(text, 1, 1) == '-' then return string.sub(text, 2) end
  if text == '0' then return text end
  return '-' .. text
end
local increments, summed = {}, {}
local function add(key, field, text)
  if #text > 15 then
    increments[#increments + 1] = {key, field, text}
    return
  end
  local n = tonumber(text)  -- 15 characters at most: exact as a double
  local fields = summed[key]
  if not fields then
    fields = {}
    summed[key] = fields
  end
  local at = fields[field]
  if at then
    local total = increments[at][3] + n
    if total < EXACT and total > -EXACT then
      increments[at][3] = total
      return
    end
  end
  increments[#increments + 1] = {key, field, n}
  fields[field] = #increments
end
-- A segment's sums, added (sign '') or taken out (sign '-') for one member: keys and fields built once per call.
local dim_keys, seg_fields = {}, {}
local function sums(dim, seg, sign, amount, purchases)
  local keys, fields = dim_keys[dim], seg_fields[seg]
  if not keys then
    keys = {prefix .. ':amt:' .. dim, prefix .. ':kpi:' .. dim}
    dim_keys[dim] = keys
  end
  if not fields then
    fields = {seg .. SEP .. 'p', seg .. SEP .. 'r'}
    seg_fields[seg] = fields
  end
  add(keys[1], seg, sign == '' and amount or negated(amount))
  add(keys[2], fields[1], sign == '' and purchases or negated(purchases))
  if tonumber(purchases) >= 2 then add(keys[2], fields[2], sign .. '1') end
end
local function known(listed, id)  -- a change already in the story list (``listed``)
  local head = id .. ' '
  for _, old_entry in ipairs(listed) do
    if string.sub(old_entry, 1, #head) == head then return true end
  end
  return false
end
local NONE = {}
local held = {}  -- customer -> where its row starts, for a customer listed twice (the later row reads that one)
-- The rows to write, in parallel arrays (a table a row would cost more): where the row starts, its record's
-- argument, its key, its old tags, whether Redis held it, its segments before and after (false: unchanged), its
-- story entries (false: none).
local p_at, p_state, p_key, p_old_tags, p_new, p_before, p_after, p_entries = {}, {}, {}, {}, {}, {}, {}, {}
local expiring = {}
local at, n, last = 1, 0, #rows
while at <= last do
  n = n + 1
  local customer, segs, amount, purchases = rows[at], rows[at + 3], rows[at + 4], rows[at + 7]
  local story_at = at + 10
  local moves_at = story_at + 2 * rows[at + 8]
  local next_at = moves_at + 6 * rows[at + 9]
  local key = prefix .. ':c:' .. customer
  local cur_epoch, cur_seq, old, old_amount, old_tags, old_purchases
  local prior = held[customer]
  if prior then
    cur_epoch, cur_seq, old, old_amount = rows[prior + 1], rows[prior + 2], rows[prior + 3], rows[prior + 4]
    old_tags, old_purchases = rows[prior + 6], rows[prior + 7]
  else
    local cur = redis.call('HMGET', key, 'epoch', 'seq', 'segments', 'amount_minor', 'tags', 'purchases')
    cur_epoch, cur_seq, old, old_amount, old_tags, old_purchases = cur[1], cur[2], cur[3], cur[4], cur[5], cur[6]
  end
  local epoch, seq = tonumber(rows[at + 1]), tonumber(rows[at + 2])
  local was_epoch, was_seq = tonumber(cur_epoch or '-1'), tonumber(cur_seq or '-1')
  if epoch > was_epoch or (epoch == was_epoch and seq > was_seq) then
    old_amount, old_purchases = old_amount or '0', old_purchases or '0'
    local k = #p_at + 1
    p_at[k], p_state[k], p_key[k], p_old_tags[k], p_new[k] = at, n + 4, key, old_tags or '', not cur_seq
    p_before[k], p_after[k], p_entries[k] = false, false, false
    if old ~= segs or old_amount ~= amount or old_purchases ~= purchases then
      -- per dimension: a segment kept with the same sums moves nothing (a rules change moves one dimension)
      local before, after = old and cjson.decode(old) or NONE, cjson.decode(segs)
      local same_sums = old_amount == amount and old_purchases == purchases
      for dim, seg in pairs(before) do
        if not (same_sums and after[dim] == seg) then sums(dim, seg, '-', old_amount, old_purchases) end
      end
      for dim, seg in pairs(after) do
        if not (same_sums and before[dim] == seg) then sums(dim, seg, '', amount, purchases) end
      end
      if old ~= segs then p_before[k], p_after[k] = before, after end
    end
    -- within one epoch a change reaches here once (a retried write of an applied row is skipped above); a new
    -- epoch (a restart, another owner) may replay changes already listed: only then are they looked for
    local listed = (story_at < next_at and cur_seq and epoch > was_epoch)
                   and redis.call('LRANGE', prefix .. ':h:' .. customer, 0, -1) or NONE
    for m = moves_at, next_at - 1, 6 do  -- id, day, dimension, from, to, amount: the day's movement summary
      if not known(listed, rows[m]) then
        local mkey, field = prefix .. ':mv:' .. rows[m + 1], rows[m + 2] .. SEP .. rows[m + 3] .. SEP .. rows[m + 4]
        add(mkey, field, '1')
        add(mkey, field .. SEP .. 'a', rows[m + 5])
        expiring[mkey] = true
      end
    end
    if story_at < moves_at then
      local entries = {}
      for h = story_at, moves_at - 1, 2 do
        if not known(listed, rows[h]) then entries[#entries + 1] = rows[h] .. ' ' .. rows[h + 1] end
      end
      p_entries[k] = entries
    end
    held[customer] = at
  end
  at = next_at
end
-- The increments: a sum Redis refuses (64-bit overflow, a foreign value) undoes those sent before it and fails
-- the call with nothing written (the writer then sends the chunk's rows one by one to find the row).
for k, inc in ipairs(increments) do
  local by = inc[3]
  if type(by) == 'number' then by = by == 0 and '0' or string.format('%.0f', by) end
  inc[3] = by
  local done = redis.pcall('HINCRBY', inc[1], inc[2], by)
  if type(done) == 'table' and done.err then
    for u = k - 1, 1, -1 do redis.call('HINCRBY', increments[u][1], increments[u][2], negated(increments[u][3])) end
    return redis.error_reply((n == 1 and 'ROW 1 ' or 'ROWS 1-' .. n .. ' ') .. done.err)
  end
end
for mkey in pairs(expiring) do redis.call('EXPIRE', mkey, moves_ttl) end
-- Memberships as the chunk leaves them (the last row of a customer wins), sent one command per set.
local members, sets = {}, {}
local function member(key, customer, now)
  local set = members[key]
  if not set then
    set = {}
    members[key] = set
    sets[#sets + 1] = key
  end
  set[customer] = now
end
for k, at in ipairs(p_at) do
  local customer, tags, old_tags = rows[at], rows[at + 6], p_old_tags[k]
  local before, after = p_before[k], p_after[k]
  if before then
    for dim, seg in pairs(before) do
      if after[dim] ~= seg then member(prefix .. ':m:' .. dim .. ':' .. seg, customer, false) end
    end
    for dim, seg in pairs(after) do
      if before[dim] ~= seg then member(prefix .. ':m:' .. dim .. ':' .. seg, customer, true) end
    end
  end
  if tags ~= old_tags then
    if old_tags ~= '' then
      for _, tag in ipairs(cjson.decode(old_tags)) do member(prefix .. ':t:' .. tag, customer, false) end
    end
    if tags ~= '' then
      for _, tag in ipairs(cjson.decode(tags)) do member(prefix .. ':t:' .. tag, customer, true) end
    end
  end
  redis.call('HSET', p_key[k], 'epoch', rows[at + 1], 'seq', rows[at + 2], 'segments', rows[at + 3],
             'amount_minor', rows[at + 4], 'purchases', rows[at + 7], 'partition', rows[at + 5], 'tags', tags,
             'state', ARGV[p_state[k]])
  local entries = p_entries[k]
  if entries and entries[1] then
    local hkey = prefix .. ':h:' .. customer
    if redis.call('LPUSH', hkey, unpack(entries)) > keep then redis.call('LTRIM', hkey, 0, keep - 1) end
  end
  if p_new[k] then
    member(prefix .. ':customers', customer, true)
    member(prefix .. ':p:' .. rows[at + 5], customer, true)
  end
end
local SLICE = 1000  -- members per command (Lua's unpack is bounded by its stack)
local function send(command, key, ids)
  for at = 1, #ids, SLICE do redis.call(command, key, unpack(ids, at, math.min(at + SLICE - 1, #ids))) end
end
for _, key in ipairs(sets) do
  local added, removed = {}, {}
  for customer, now in pairs(members[key]) do
    if now then added[#added + 1] = customer else removed[#removed + 1] = customer end
  end
  send('SREM', key, removed)
  send('SADD', key, added)
end
return #p_at
"""

_ERASE = """
local prefix = ARGV[1]
local SEP = string.char(31)
local function negated(text)
  if string.sub(text, 1, 1) == '-' then return string.sub(text, 2) end
  if text == '0' then return text end
  return '-' .. text
end
for i = 2, #ARGV do
  local customer = ARGV[i]
  local key = prefix .. ':c:' .. customer
  local cur = redis.call('HMGET', key, 'segments', 'amount_minor', 'tags', 'partition', 'purchases')
  if cur[1] then
    local purchases = cur[5] or '0'
    for dim, seg in pairs(cjson.decode(cur[1])) do
      redis.call('SREM', prefix .. ':m:' .. dim .. ':' .. seg, customer)
      redis.call('HINCRBY', prefix .. ':amt:' .. dim, seg, negated(cur[2] or '0'))
      redis.call('HINCRBY', prefix .. ':kpi:' .. dim, seg .. SEP .. 'p', negated(purchases))
      if tonumber(purchases) >= 2 then redis.call('HINCRBY', prefix .. ':kpi:' .. dim, seg .. SEP .. 'r', -1) end
    end
  end
  if cur[3] and cur[3] ~= '' then
    for _, tag in ipairs(cjson.decode(cur[3])) do redis.call('SREM', prefix .. ':t:' .. tag, customer) end
  end
  if cur[4] then redis.call('SREM', prefix .. ':p:' .. cur[4], customer) end
  redis.call('SREM', prefix .. ':customers', customer)
  redis.call('DEL', key, prefix .. ':h:' .. customer)
  redis.call('HDEL', prefix .. ':quarantine', customer)
end
return #ARGV - 1
"""


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
        self._script = self.client.register_script(_APPLY)
        self._erase = self.client.register_script(_ERASE)

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
                await self.client.script_load(_APPLY)  # Redis restarted since the script was loaded
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
        """This worker's running totals (applied, duplicate, too_old, dead_letters, changes …)."""
        if counters:
            await self.client.hset(f"{self.prefix}:stats:{worker}", mapping=dict(counters))
            await self.client.expire(f"{self.prefix}:stats:{worker}", 3600)

    async def close(self) -> None:
        await self.client.aclose()
