"""The movement summary the workers keep in Redis (streams/readmodel/movement.py): each move counted once on its
business day, a write retried or replayed by a new epoch (a restart) not counted again, and the sum over a span."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import redis

from streams.names import Names
from streams.readmodel.reader import ReadModel
from streams.readmodel.writer import ProjectedCustomer, Projection

DAY = datetime(2026, 6, 30, 12, tzinfo=UTC)


def row(epoch: int, seq: int, moves: tuple[tuple[str, int, str, str, str, int], ...], segment: str,
        story: bool = True) -> ProjectedCustomer:
    history = tuple((m[0], '{"at":"x"}') for m in moves) if story else ()
    return ProjectedCustomer("M1", epoch, seq, {"value": segment}, 100, 0, b"state", (), history, moves)


def test_moves_count_once_per_change_across_retries_and_a_restart(system):
    settings = system.settings
    prefix = Names(settings.topic_prefix).redis
    day = settings.policy().calendar.day(DAY)
    first = ("c1", day, "value", "(none)", "low_value", 10_000)
    second = ("c2", day, "value", "low_value", "high_value", 2_000_000)

    async def write(*rows: ProjectedCustomer) -> None:
        projection = Projection(settings.redis_url, prefix, 5, **settings.redis_options())
        try:
            await projection.write_many(list(rows), {0: (DAY.isoformat(), day)})
        finally:
            await projection.close()

    asyncio.run(write(row(1, 1, (first,), "low_value")))
    asyncio.run(write(row(1, 1, (first,), "low_value")))  # the same flush written again: not newer, not counted
    asyncio.run(write(row(2, 1, (first,), "low_value")))  # a restart replays it: listed in the story, not counted
    asyncio.run(write(row(2, 2, (second,), "high_value")))
    summary = redis.Redis.from_url(settings.redis_url).hgetall(f"{prefix}:mv:{day}")
    assert summary == {b"value\x1f(none)\x1flow_value": b"1", b"value\x1f(none)\x1flow_value\x1fa": b"10000",
                       b"value\x1flow_value\x1fhigh_value": b"1", b"value\x1flow_value\x1fhigh_value\x1fa": b"2000000"}
    moved = ReadModel.of(settings).movement(timedelta(days=7), settings.money_scale)
    assert {k: (m.customers, m.amount_12m) for k, m in moved.moves.items()} == {
        ("value", "(none)", "low_value"): (1, Decimal("100.00")),
        ("value", "low_value", "high_value"): (1, Decimal("20000.00"))}
    assert moved.until == DAY
