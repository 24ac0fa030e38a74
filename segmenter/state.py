"""Per-customer rolling-window state as a value: sparse day buckets, ``apply`` and ``advance``.

The state keeps one bucket per business day that saw an event, inside the longest window only.
Each bucket also holds 64-bit hashes of the ``event_id`` values applied on that day, so a repeated
event changes nothing; the hashes leave with their bucket, and an event that old is refused anyway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from typing import NamedTuple

from segmenter.errors import InvalidEventError
from segmenter.timebase import Calendar, WindowSpec

PURCHASE, REFUND, INTERACTION = 0, 1, 2


class Fact(NamedTuple):
    """An event reduced to what the windows need (build one with ``facts.fact_of_*``)."""

    day: int
    kind: int  # PURCHASE, REFUND or INTERACTION
    amount: int = 0  # minor currency units, never negative
    id_hash: int = 0
    complaint: bool = False
    referral: bool = False
    satisfaction: int = 0  # 1..5, 0 when not given


class Bucket(NamedTuple):
    """The sums of one business day."""

    day: int
    purchases: int = 0
    amount: int = 0  # net of refunds, minor units
    refunds: int = 0
    interactions: int = 0
    complaints: int = 0
    referrals: int = 0
    sat_sum: int = 0
    sat_count: int = 0
    ids: tuple[int, ...] = ()


class WindowState(NamedTuple):
    """One customer's windows: buckets in day order plus first/last purchase days."""

    buckets: tuple[Bucket, ...] = ()
    first_purchase: int | None = None
    last_purchase: int | None = None


EMPTY = WindowState()


class Outcome(Enum):
    """What ``apply`` did with an event."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"


@lru_cache(maxsize=4096)
def _start_day(spec: WindowSpec, as_of_day: int) -> int:
    return spec.start_day(as_of_day)


@dataclass(frozen=True, slots=True)
class Policy:
    """How time and money are counted: timezone, the two windows, minor-unit scale."""

    timezone: tzinfo = UTC
    long_window: WindowSpec = field(default_factory=lambda: WindowSpec(12, "m"))
    short_window: WindowSpec = field(default_factory=lambda: WindowSpec(6, "m"))
    money_scale: int = 2
    calendar: Calendar = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "calendar", Calendar(self.timezone))

    def long_start(self, as_of_day: int) -> int:
        return _start_day(self.long_window, as_of_day)

    def short_start(self, as_of_day: int) -> int:
        return _start_day(self.short_window, as_of_day)

    def horizon_start(self, as_of_day: int) -> int:
        """The oldest day any window still holds: older events change nothing."""
        return min(self.long_start(as_of_day), self.short_start(as_of_day))

    def to_minor(self, amount: Decimal) -> int:
        scaled = amount.scaleb(self.money_scale)
        if scaled != scaled.to_integral_value():
            raise InvalidEventError(f"amount {amount} has more than {self.money_scale} decimal places")
        return int(scaled)

    def from_minor(self, minor: int) -> Decimal:
        return Decimal(minor).scaleb(-self.money_scale)


def hash_event_id(event_id: str) -> int:
    """A stable 64-bit hash of an event id (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def _added(bucket: Bucket, fact: Fact) -> Bucket:
    d, p, a, r, i, c, ref, ss, sc, ids = bucket
    ids = (*ids, fact.id_hash)
    if fact.kind == PURCHASE:
        return Bucket(d, p + 1, a + fact.amount, r, i, c, ref, ss, sc, ids)
    if fact.kind == REFUND:
        return Bucket(d, p, a - fact.amount, r + 1, i, c, ref, ss, sc, ids)
    sat = fact.satisfaction
    return Bucket(
        d, p, a, r, i + 1, c + fact.complaint, ref + fact.referral, ss + sat, sc + (sat > 0), ids
    )


def apply(state: WindowState, fact: Fact, now_day: int, policy: Policy) -> tuple[WindowState, Outcome]:
    """Fold one event into the state as of stream day ``now_day``."""
    day = fact.day
    if day < policy.horizon_start(now_day):
        return state, Outcome.TOO_OLD
    buckets = state.buckets
    i = len(buckets)
    while i and buckets[i - 1].day > day:
        i -= 1
    if i and buckets[i - 1].day == day:
        old = buckets[i - 1]
        if fact.id_hash in old.ids:
            return state, Outcome.DUPLICATE
        buckets = (*buckets[: i - 1], _added(old, fact), *buckets[i:])
    else:
        buckets = (*buckets[:i], _added(Bucket(day), fact), *buckets[i:])
    first, last = state.first_purchase, state.last_purchase
    if fact.kind == PURCHASE:
        first = day if first is None or day < first else first
        last = day if last is None or day > last else last
    return WindowState(buckets, first, last), Outcome.APPLIED


def advance(state: WindowState, now_day: int, policy: Policy) -> WindowState:
    """Drop the buckets that have left every window as of ``now_day``."""
    buckets = state.buckets
    if not buckets:
        return state
    horizon = policy.horizon_start(now_day)
    if buckets[0].day >= horizon:
        return state
    keep = next((i for i, b in enumerate(buckets) if b.day >= horizon), len(buckets))
    return state._replace(buckets=buckets[keep:])
