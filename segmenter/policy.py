"""How time and money are counted (``Policy``): the timezone and business days, the two windows, the minor-unit
scale and the largest amount of one event. ``segmenter.state`` folds events into windows under one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from decimal import Decimal

from segmenter.errors import InvalidEventError
from segmenter.timebase import Calendar, WindowSpec

MAX_AMOUNT = Decimal(10) ** 12
"""The default largest amount of one event, in major units: sums of many such events stay exact integers in
every store (the state's varints, Redis' 64-bit counters)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How time and money are counted: timezone, the two windows, minor-unit scale, largest amount."""

    timezone: tzinfo = UTC
    long_window: WindowSpec = field(default_factory=lambda: WindowSpec(12, "m"))
    short_window: WindowSpec = field(default_factory=lambda: WindowSpec(6, "m"))
    money_scale: int = 2
    max_amount: Decimal = MAX_AMOUNT
    max_categories: int = 20  # categories kept by name per customer (greatest amounts); the rest count as OTHER
    calendar: Calendar = field(init=False, repr=False, compare=False)
    max_minor: int = field(init=False, repr=False, compare=False)
    _starts: dict[int, tuple[int, int, int]] = field(init=False, repr=False, compare=False)
    _leaves: dict[int, tuple[int, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "calendar", Calendar(self.timezone))
        object.__setattr__(self, "max_minor", int(self.max_amount.scaleb(self.money_scale)))
        object.__setattr__(self, "_starts", {})
        object.__setattr__(self, "_leaves", {})

    def starts(self, as_of_day: int) -> tuple[int, int, int]:
        """(long window start, short window start, horizon) as of a day; memoised per policy."""
        found = self._starts.get(as_of_day)
        if found is None:
            if len(self._starts) > 100_000:
                self._starts.clear()
            ls, ss = self.long_window.start_day(as_of_day), self.short_window.start_day(as_of_day)
            found = self._starts[as_of_day] = (ls, ss, min(ls, ss))
        return found

    def leave_days(self, day: int) -> tuple[int, int]:
        """The first as-of days at which ``day`` is outside the (long, short) window; memoised."""
        found = self._leaves.get(day)
        if found is None:
            if len(self._leaves) > 100_000:
                self._leaves.clear()
            found = self._leaves[day] = (self.long_window.leave_day(day), self.short_window.leave_day(day))
        return found

    def long_start(self, as_of_day: int) -> int:
        return self.starts(as_of_day)[0]

    def short_start(self, as_of_day: int) -> int:
        return self.starts(as_of_day)[1]

    def horizon_start(self, as_of_day: int) -> int:
        """The oldest day any window still holds: older events change nothing."""
        return self.starts(as_of_day)[2]

    def to_minor(self, amount: Decimal) -> int:
        if not amount.is_finite() or not -self.max_amount <= amount <= self.max_amount:  # 1e400 is never expanded
            raise InvalidEventError(f"amount {amount} is above the maximum {self.max_amount} (the max_amount setting)")
        scaled = amount.scaleb(self.money_scale)
        if scaled != scaled.to_integral_value():
            raise InvalidEventError(f"amount {amount} has more than {self.money_scale} decimal places")
        return int(scaled)

    def check_minor(self, minor: int) -> int:
        """``minor`` (an amount in minor units), when it is within ``max_amount``."""
        if minor > self.max_minor:
            raise InvalidEventError(f"amount {self.from_minor(minor)} is above the maximum {self.max_amount} "
                                    "(the max_amount setting)")
        return minor

    def from_minor(self, minor: int) -> Decimal:
        return Decimal(minor).scaleb(-self.money_scale)
