"""What the API's endpoints share: the settings, one Redis connection pool, the partitions' clocks, the rulesets
(kept in memory, read from the rules history when one is missing), and the reads more than one endpoint makes."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis.asyncio as aioredis
from fastapi import HTTPException
from fastapi.responses import Response

from segmenter.errors import SegmenterError
from segmenter.rules import RuleSet, load_ruleset
from segmenter.rules.rulebook import combine, keys_of
from streams.kafka.control import latest_rules, rules_history, rulesets_in_force
from streams.names import Names
from streams.readmodel.movement import SUM, Movement, day_keys, pairs_of, summed
from streams.readmodel.pareto import ParetoRow, described, pareto, with_kpis
from streams.readmodel.reader import decode_changes, newest_stream_time, parse_clock, segment_rows, view_of
from streams.readmodel.story import story
from streams.settings import Settings

log = logging.getLogger("segmenter.api")
CLOCK_TTL_S = 1.0  # the partitions' clocks are read at most this often
RULES_RETRY_S = 5.0  # a ruleset not found in the history is looked for again after this long


def json_response(doc: Any) -> Response:
    """JSON by orjson, money as its exact text: the hot reads skip FastAPI's re-encoding of their answer."""
    return Response(orjson.dumps(doc, default=str), media_type="application/json")


def api_error(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


class Api:
    """What the endpoints share: settings, one Redis connection pool, the partitions' clocks and the rulesets."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.policy = settings, settings.policy()
        self.names = Names(settings.topic_prefix)
        self.prefix = self.names.redis
        self.redis = aioredis.from_url(settings.redis_url, **settings.redis_options())
        self._clock: tuple[float, dict[int, tuple[str, int]]] = (0.0, {})
        self._rules: dict[str, RuleSet] = {}
        self._rules_looked = 0.0
        self._in_force: tuple[float, list[RuleSet]] = (-RULES_RETRY_S, [])
        self._sum = self.redis.register_script(SUM)

    async def clock(self) -> dict[int, tuple[str, int]]:
        at, clock = self._clock
        if time.monotonic() - at >= CLOCK_TTL_S:
            clock = parse_clock(await self.redis.hgetall(f"{self.prefix}:clock"))
            self._clock = (time.monotonic(), clock)
        return clock

    async def ruleset(self, key: str) -> RuleSet | None:
        """The ruleset ``id@version`` (from the rules history, kept), the rulesets a combined key names, combined, or
        None."""
        parts = keys_of(key)
        if len(parts) > 1 and key not in self._rules:
            found_parts = [await self.ruleset(part) for part in parts]
            if any(part is None for part in found_parts):
                return None
            combined = combine(part for part in found_parts if part is not None)
            if combined is not None:
                self._rules[key] = combined
            return combined
        found = self._rules.get(key)
        if found is None and time.monotonic() - self._rules_looked >= RULES_RETRY_S:
            self._rules_looked = time.monotonic()
            try:
                texts = [a.yaml for a in await rules_history(self.settings)]
                texts += list((await latest_rules(self.settings)).values())
            except Exception as exc:  # the broker away: the read model still answers, without explanations
                log.warning("rulesets not read from the broker (%s): customers are shown without explanations", exc)
                return None
            for text in texts:
                try:
                    ruleset = load_ruleset(text, "rules topic", self.settings.money_scale)
                except SegmenterError:
                    continue
                self._rules.setdefault(ruleset.key, ruleset)
            found = self._rules.get(key)
        return found

    async def pareto(self) -> list[ParetoRow]:
        """The Pareto table of every dimension, from the read model's sums and member sets."""
        rows = []
        async for key in self.redis.scan_iter(f"{self.prefix}:amt:*", count=1000):
            dimension = key.decode().split(":amt:", 1)[1]
            amounts = await self.redis.hgetall(key)
            pipe = self.redis.pipeline(transaction=False)
            for name in sorted(amounts):
                pipe.scard(f"{self.prefix}:m:{dimension}:{name.decode()}")
            rows += segment_rows(dimension, amounts, await pipe.execute(), self.settings.money_scale)
        dimensions = sorted({r[0] for r in rows})
        pipe = self.redis.pipeline(transaction=False)
        for dimension in dimensions:
            pipe.hgetall(f"{self.prefix}:kpi:{dimension}")
        sums = dict(zip(dimensions, await pipe.execute(), strict=True))
        return described(with_kpis(pareto(rows), sums, self.settings.money_scale), await self.in_force())

    async def in_force(self) -> list[RuleSet]:
        """The rulesets in force (their labels and strategies), read from the broker at most every
        ``RULES_RETRY_S``; what was last read while the broker is away."""
        at, rulesets = self._in_force
        if time.monotonic() - at >= RULES_RETRY_S:
            try:
                rulesets = await rulesets_in_force(self.settings)
            except Exception as exc:  # the broker away: segments are shown without labels
                log.warning("rulesets in force not read from the broker (%s): segments shown as last read", exc)
            self._in_force = (time.monotonic(), rulesets)
        return rulesets

    async def stream_time(self) -> datetime | None:
        return newest_stream_time(await self.clock())

    async def movement(self, span: timedelta) -> Movement:
        """What moved within ``span`` before the newest stream time: one hash read per business day."""
        until = await self.stream_time()
        if until is None:
            return Movement(None, None)
        keys = day_keys(self.prefix, self.policy, span, until)
        days = pairs_of(await self._sum(keys=keys))
        if days is None:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            days = await pipe.execute()
        return summed(days, self.settings.money_scale, until - span, until)

    async def customer(self, customer_id: str) -> dict[str, Any] | None:
        """A customer's story with its segments and recent changes; None when not known."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(f"{self.prefix}:c:{customer_id}", "segments", "partition", "state")
        pipe.lrange(f"{self.prefix}:h:{customer_id}", 0, -1)
        (segments, partition, state), recent = await pipe.execute()
        if state is None:
            return None
        view = view_of(customer_id, segments, partition, state, clock=await self.clock(), policy=self.policy)
        record = view.record
        assert record is not None
        ruleset = await self.ruleset(record.ruleset) if record.ruleset else None
        doc = story(self.policy, view, record, view.day, ruleset)
        doc["segments"] = view.segments
        doc["recent_changes"] = decode_changes(recent)
        return doc

    async def members(self, key: str, cursor: str | None, limit: int) -> Response:
        try:
            start = int(cursor or "0")
        except ValueError:
            raise api_error(400, f"cursor {cursor!r} is not one this API returned") from None
        following, found = await self.redis.sscan(key, start, count=limit)
        return json_response({"members": sorted(m.decode() for m in found),
                              "next_cursor": None if int(following) == 0 else str(following)})


