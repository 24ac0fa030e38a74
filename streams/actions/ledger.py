"""What the action worker keeps in Redis: idempotency keys, per-segment counts, manager loads.

Keys under the prefix ``P``::

    P:action:<action>:<change_id>   the outcome (issued grant or suppression) as JSON, with a TTL
    P:action-counts                 hash: "<dimension.segment>|<action>|<outcome>" -> count
    P:mgr:<roster>:<manager>        set of the customers assigned to a manager (its load)
    P:cust-actions:<customer>       set of the customer's P:action:... keys, so that an erasure removes them all
    P:rr:<roster>:<team>            round-robin turn counter of a team

The record script derives its keys from the prefix (standalone Redis allows it; Redis Cluster would need hash tags),
as the read model's apply script does.

Redis is a projection here, not the ledger (that is the changelog-backed ``action-ledger`` table):
each outcome is recorded with ``SET NX`` and counted only when the key was new, so recording the
same outcome again after a crash or a replay never counts it twice. Every call waits and retries
while Redis is away (``streams.readmodel.retry``), which holds the agent and shows as lag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from segmenter.actions import RosterSpec
from streams.readmodel.retry import retrying

_RECORD = """
-- A batch's outcomes: ARGV = prefix, time to live, then four per outcome (action:change_id, document, count field,
-- customer). Each is set only if new (SET NX), and only then counted and indexed under its customer; the counts are
-- summed over the call and sent once a field. Returns 1 or 0 per outcome (recorded now, or before).
local prefix, ttl = ARGV[1], ARGV[2]
local counts, fields, done = {}, {}, {}
for i = 3, #ARGV, 4 do
  local key = prefix .. ':action:' .. ARGV[i]
  if redis.call('SET', key, ARGV[i + 1], 'NX', 'EX', ttl) then
    local field = ARGV[i + 2]
    if not counts[field] then
      counts[field] = 0
      fields[#fields + 1] = field
    end
    counts[field] = counts[field] + 1
    local index = prefix .. ':cust-actions:' .. ARGV[i + 3]
    redis.call('SADD', index, key)
    redis.call('EXPIRE', index, ttl)
    done[#done + 1] = 1
  else
    done[#done + 1] = 0
  end
end
for _, field in ipairs(fields) do redis.call('HINCRBY', prefix .. ':action-counts', field, counts[field]) end
return done
"""
RECORDED_PER_CALL = 1000  # outcomes per script call (a pipeline of calls for a bigger batch)

OUTCOMES = ("issued", "cooldown", "replay", "dwell", "recovery")


class ActionStore:
    def __init__(self, url: str, prefix: str, ttl_s: int, **options: Any) -> None:
        self.prefix, self.ttl_s = prefix, ttl_s
        self.client = aioredis.from_url(url, **options)
        self._record = self.client.register_script(_RECORD)

    async def record(self, key: str, segment: str, action: str, outcome: str, document: bytes, *,
                     customer: str) -> bool:
        """Record one outcome of ``key`` (action:change_id) of ``customer``; True when it was not recorded before."""
        return (await self.record_many([(key, segment, action, outcome, document, customer)]))[0]

    async def record_many(self, outcomes: Sequence[tuple[str, str, str, str, bytes, str]]) -> list[bool]:
        """Record a batch's outcomes, each ``(key, segment, action, outcome, document, customer)`` as in
        ``record``, in one round trip (one script call per ``RECORDED_PER_CALL``: one call per grant cost Redis
        and the worker a command each); True for each not recorded before."""
        if not outcomes:
            return []
        calls: list[list[Any]] = []
        for start in range(0, len(outcomes), RECORDED_PER_CALL):
            args: list[Any] = [self.prefix, self.ttl_s]
            for key, segment, action, outcome, document, customer in outcomes[start : start + RECORDED_PER_CALL]:
                args += (key, document, f"{segment}|{action}|{outcome}", customer)
            calls.append(args)

        async def run() -> list[bool]:
            async with self.client.pipeline(transaction=False) as pipe:
                for args in calls:
                    await self._record(keys=[], args=args, client=pipe)
                return [bool(n) for done in await pipe.execute() for n in done]

        return await retrying(run)

    async def assign(self, roster: RosterSpec, members: Sequence[str], team: str, customer: str,
                     current: str | None) -> str:
        """The manager of ``customer`` in ``members``: ``current`` if still there, else one Redis already
        holds for it (a grant that crashed before its ledger write), else by the roster's policy."""
        return (await self.assign_many([(roster, members, team, customer, current)]))[0]

    async def assign_many(self, asks: Sequence[tuple[RosterSpec, Sequence[str], str, str, str | None]]) -> list[str]:
        """``assign`` for a batch's alerts, each ``(roster, members, team, customer, current)``, in a few round trips
        for the whole batch instead of three per alert: every manager's load and who holds each customer read
        together, the choices made in order against those loads (each counted as it is made, as one at a time
        would see it), the moves written together. A round-robin turn is taken (an increment of the team's counter)
        by each alert that needs one, as one at a time takes it."""
        if not asks:
            return []
        rosters = {spec.name: spec for spec, *_ in asks}
        managers = sorted({(name, m) for name, spec in rosters.items()
                           for m in {*spec.default, *(x for team in spec.teams.values() for x in team)}})
        pairs = sorted({(spec.name, m, customer) for spec, _, _, customer, _ in asks
                        for (name, m) in managers if name == spec.name})

        async def read() -> tuple[dict[tuple[str, str], int], set[tuple[str, str, str]]]:
            async with self.client.pipeline(transaction=False) as pipe:
                for name, m in managers:
                    pipe.scard(f"{self.prefix}:mgr:{name}:{m}")
                for name, m, customer in pairs:
                    pipe.sismember(f"{self.prefix}:mgr:{name}:{m}", customer)
                found = await pipe.execute()
            loads = {key: int(n) for key, n in zip(managers, found[:len(managers)], strict=True)}
            return loads, {pair for pair, yes in zip(pairs, found[len(managers):], strict=True) if yes}

        loads, held = await retrying(read)
        chosen: list[str] = []
        for spec, members, team, customer, current in asks:
            keep = current
            if keep is None or keep not in members:
                keep = next((m for m in members if (spec.name, m, customer) in held), None) or keep
            turn = 0
            if keep not in members and spec.policy == "round_robin":
                turn = await self._turn(f"{self.prefix}:rr:{spec.name}:{team}")
            manager = spec.choose(members, keep, {m: loads.get((spec.name, m), 0) for m in members}, turn)
            for name, m in managers:  # the customer leaves any other manager of the roster: their loads drop
                if name == spec.name and m != manager and (name, m, customer) in held:
                    held.discard((name, m, customer))
                    loads[name, m] -= 1
            if (spec.name, manager, customer) not in held:
                held.add((spec.name, manager, customer))
                loads[spec.name, manager] = loads.get((spec.name, manager), 0) + 1
            chosen.append(manager)

        async def move() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for (spec, _, _, customer, _), manager in zip(asks, chosen, strict=True):
                    for name, m in managers:
                        if name == spec.name and m != manager:
                            pipe.srem(f"{self.prefix}:mgr:{name}:{m}", customer)
                    pipe.sadd(f"{self.prefix}:mgr:{spec.name}:{manager}", customer)
                await pipe.execute()

        await retrying(move)
        return chosen

    async def _turn(self, counter: str) -> int:
        """The next round-robin turn of a team (from 0)."""
        return int(await retrying(lambda: self.client.incr(counter))) - 1

    async def forget(self, customer: str, known: Sequence[str]) -> int:
        """An erased customer: its outcome documents (those indexed, and ``known`` action:change_id keys of its
        ledger), its index, its place in every manager's set. Returns how many keys went."""
        index = f"{self.prefix}:cust-actions:{customer}"

        async def run() -> int:
            keys = {k.decode() for k in await self.client.smembers(index)}
            keys |= {f"{self.prefix}:action:{k}" for k in known}
            managers = [k async for k in self.client.scan_iter(f"{self.prefix}:mgr:*", count=1000)]
            async with self.client.pipeline(transaction=True) as pipe:
                for key in sorted(keys):
                    pipe.delete(key)
                pipe.delete(index)
                for key in managers:
                    pipe.srem(key, customer)
                done = await pipe.execute()
            return sum(int(n) for n in done[:len(keys)])

        return await retrying(run)

    async def close(self) -> None:
        await self.client.aclose()
