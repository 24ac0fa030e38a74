"""The engine's stream clock: the same-day shortcut of ``Customers.advance`` never keeps a day that has ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from streams.names import Names
from streams.settings import Settings
from streams.worker.engine import Engine
from streams.worker.partition import Partition


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/Santiago", "Europe/Berlin"])
def test_partition_day_follows_the_business_calendar_across_midnights_and_dst(zone: str) -> None:
    settings = Settings(timezone=zone)
    names = Names(settings.topic_prefix)
    engine = Engine(SimpleNamespace(), settings, names, {names.customers_table: None, names.partitions_table: None})
    calendar = engine.policy.calendar
    part = Partition(0)
    # 37 minutes apart for a year: every local midnight is crossed, including the DST changes
    # (Santiago moves its clocks at midnight, so a local midnight is skipped or repeated there).
    when = datetime(2025, 1, 1, tzinfo=UTC)
    days = set()
    for _ in range(365 * 24 * 60 // 37):
        when += timedelta(minutes=37)
        engine.store.advance(part, when)
        assert part.day == calendar.day(when), when
        days.add(part.day)
    assert len(days) >= 364


def test_the_stream_time_text_follows_every_move_of_the_stream_clock() -> None:
    part = Partition(0)
    before = datetime.now(UTC)
    assert datetime.fromisoformat(part.stream_time_text()) >= before  # no stream time yet: the wall clock's
    first = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    part.stream_time = first
    assert part.stream_time_text() == first.isoformat()
    part.stream_time = first + timedelta(microseconds=1)
    assert part.stream_time_text() == "2025-03-01T09:30:00.000001+00:00"
    part.stream_time = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)  # equal to the first, another object
    assert part.stream_time_text() == "2025-03-01T09:30:00+00:00"
