"""What the action worker keeps in Redis: idempotency keys, per-segment counts, manager loads.

Keys under the prefix ``P``::

    P:action:<action>:<change_id>   the outcome (issued grant or suppression) as JSON, with a TTL
    P:action-counts                 hash: "<dimension.segment>|<action>|<outcome>" -> count
    P:mgr:<roster>:<manager>        set of the customers assigned to a manager (its load)
    P:cust-actions:<customer>       set of the customer's P:action:... keys, so that an erasure removes them all
    P:rr:<roster>:<team>            round-robin turn counter of a team

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
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('SADD', KEYS[3], KEYS[1])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  return 1
end
return 0
"""

OUTCOMES = ("issued", "cooldown", "replay", "dwell", "recovery")


class ActionStore:
    def __init__(self, url: str, prefix: str, ttl_s: int, **options: Any) -> None:
        self.prefix, self.ttl_s = prefix, ttl_s
        self.client = aioredis.from_url(url, **options)
        self._record = self.client.register_script(_RECORD)

    async def record(self, key: str, segment: str, action: str, outcome: str, document: bytes, *,
                     customer: str) -> bool:
        """Record one outcome of ``key`` (action:change_id) of ``customer``; True when it was not recorded before."""
        keys = [f"{self.prefix}:action:{key}", f"{self.prefix}:action-counts", f"{self.prefix}:cust-actions:{customer}"]
        args: list[bytes | str | int] = [document, f"{segment}|{action}|{outcome}", self.ttl_s]
        return bool(await retrying(lambda: self._record(keys=keys, args=args)))

    async def record_many(self, outcomes: Sequence[tuple[str, str, str, str, bytes, str]]) -> list[bool]:
        """Record a batch's outcomes, each ``(key, segment, action, outcome, document, customer)`` as in
        ``record``, in one round trip (a pipeline of the same script); True for each not recorded before."""
        if not outcomes:
            return []

        async def run() -> list[bool]:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, segment, action, outcome, document, customer in outcomes:
                    await self._record(keys=[f"{self.prefix}:action:{key}", f"{self.prefix}:action-counts",
                                             f"{self.prefix}:cust-actions:{customer}"],
                                       args=[document, f"{segment}|{action}|{outcome}", self.ttl_s], client=pipe)
                return [bool(n) for n in await pipe.execute()]

        return await retrying(run)

    async def assign(self, roster: RosterSpec, members: Sequence[str], team: str, customer: str,
                     current: str | None) -> str:
        """The manager of ``customer`` in ``members``: ``current`` if still there, else one Redis already
        holds for it (a grant that crashed before its ledger write), else by the roster's policy."""
        if current is None or current not in members:
            held = await retrying(lambda: self._members_holding(roster.name, members, customer))
            current = held or current
        turn = 0
        loads: dict[str, int] = {}
        if current not in members:
            if roster.policy == "round_robin":
                turn = int(await retrying(lambda: self.client.incr(f"{self.prefix}:rr:{roster.name}:{team}"))) - 1
            else:
                loads = await retrying(lambda: self._loads(roster.name, members))
        manager = roster.choose(members, current, loads, turn)
        await retrying(lambda: self._move(roster, customer, manager))
        return manager

    async def _members_holding(self, roster: str, members: Sequence[str], customer: str) -> str | None:
        async with self.client.pipeline(transaction=False) as pipe:
            for m in members:
                pipe.sismember(f"{self.prefix}:mgr:{roster}:{m}", customer)
            found = await pipe.execute()
        return next((m for m, held in zip(members, found, strict=True) if held), None)

    async def _loads(self, roster: str, members: Sequence[str]) -> dict[str, int]:
        async with self.client.pipeline(transaction=False) as pipe:
            for m in members:
                pipe.scard(f"{self.prefix}:mgr:{roster}:{m}")
            counts = await pipe.execute()
        return dict(zip(members, (int(c) for c in counts), strict=True))

    async def _move(self, roster: RosterSpec, customer: str, manager: str) -> None:
        """``customer`` belongs to ``manager`` alone among the roster's managers."""
        everyone = {m for team in roster.teams.values() for m in team} | set(roster.default)
        async with self.client.pipeline(transaction=False) as pipe:
            for other in sorted(everyone - {manager}):
                pipe.srem(f"{self.prefix}:mgr:{roster.name}:{other}", customer)
            pipe.sadd(f"{self.prefix}:mgr:{roster.name}:{manager}", customer)
            await pipe.execute()

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
