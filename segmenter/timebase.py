"""Days and windows in a business timezone, as pure arithmetic on day ordinals.

A *day* is ``date.toordinal()`` of the local date in the business timezone. "The last N months as
of T" are the days after ``day(T) - N calendar months`` (clamped to the month's last day) up to and
including ``day(T)``; ``Nd`` windows are the N days ending with ``day(T)``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

from segmenter.errors import InvalidWindowError

_WINDOW = re.compile(r"^\s*(\d{1,4})\s*([md])\s*$")


def sub_months(day: date, months: int) -> date:
    """``day`` minus ``months`` calendar months, clamped to the target month's last day."""
    index = day.year * 12 + (day.month - 1) - months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(day.day, last))


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A window length: ``count`` calendar months (``unit='m'``) or days (``unit='d'``)."""

    count: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        match = _WINDOW.match(text)
        if match is None or int(match.group(1)) == 0:
            raise InvalidWindowError(
                f"window {text!r}: expected a positive count of months or days such as '12m' or '365d'"
            )
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def start_day(self, as_of_day: int) -> int:
        """The first day (ordinal) inside this window as of ``as_of_day``."""
        if self.unit == "d":
            return as_of_day - self.count + 1
        return sub_months(date.fromordinal(as_of_day), self.count).toordinal() + 1

    def leave_day(self, bucket_day: int) -> int:
        """The first as-of day at which ``bucket_day`` is no longer inside this window."""
        if self.unit == "d":
            return bucket_day + self.count
        return _leave_day_months(self.count, bucket_day)


@lru_cache(maxsize=65536)
def _leave_day_months(count: int, bucket_day: int) -> int:
    """``WindowSpec(count, 'm').leave_day``: memoised, the hot path asks for few distinct days."""
    spec = WindowSpec(count, "m")
    # Months subtraction clamps, so it is monotone but not invertible: step from a guess.
    guess = bucket_day + 28 * count
    while spec.start_day(guess) > bucket_day:
        guess -= 1
    while spec.start_day(guess) <= bucket_day:
        guess += 1
    return guess


class Calendar:
    """Maps instants to business days and back in one timezone."""

    __slots__ = ("_utc", "tz")

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self._utc = tz is UTC

    def day(self, instant: datetime) -> int:
        """The ordinal of the local business day holding ``instant`` (which must be aware)."""
        if instant.tzinfo is None:
            raise ValueError("naive datetime: every instant must carry a timezone")
        if self._utc:
            return (instant - _EPOCH).days + _EPOCH_ORDINAL
        return instant.astimezone(self.tz).date().toordinal()

    def start_of(self, day: int) -> datetime:
        """Midnight at the start of ``day`` in the business timezone."""
        return datetime.combine(date.fromordinal(day), time(0), self.tz)

    def end_of(self, day: int) -> datetime:
        """The last microsecond of ``day`` in the business timezone."""
        return self.start_of(day + 1) - timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
