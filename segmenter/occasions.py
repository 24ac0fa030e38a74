"""Occasions (生日关怀, 首购周年): a customer's birthday and the anniversary of its first purchase, each a day a year.

An action may fire ``on: birthday`` or ``on: first_purchase_anniversary``, ``lead`` days ahead. The worker does not
scan for them: a customer's due day (``step``) is at most its next occasion's wake day (the occasion's day less the
lead), so the due index wakes it then, and the wake emits the occasion as a change with a deterministic id (the
customer, the kind, the day, the lead): a replay emits the same id, which the action ledger grants once.

Dates: a birthday on 29 February falls on 28 February in other years; the birth year itself is not a birthday,
nor is the first purchase's day an anniversary. A customer woken late (the stream jumped) gets the occasions of
the last ``CATCH_UP_DAYS`` it missed, never more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

Kind = Literal["birthday", "first_purchase_anniversary"]
BIRTHDAY: Kind = "birthday"
ANNIVERSARY: Kind = "first_purchase_anniversary"
BIRTH_DATE = "birth_date"  # the profile's key (ISO date text), beside the ``profile.*`` attributes rules read
CATCH_UP_DAYS = 366
MAX_LEAD_DAYS = 366


@dataclass(frozen=True, slots=True)
class OccasionSpec:
    """An occasion some action of ruleset ``ruleset_id`` fires on: its kind and how many days ahead."""

    kind: Kind
    lead_days: int
    ruleset_id: str


@dataclass(frozen=True, slots=True)
class Occasion:
    """An occasion reached: the customer's ``kind`` on business day ``day``, ``lead_days`` ahead of it."""

    kind: Kind
    day: int
    lead_days: int
    ruleset_id: str  # the ruleset whose actions fire on it

    @property
    def wake(self) -> int:
        return self.day - self.lead_days

    @property
    def cause(self) -> str:
        return "time"

    def change_id(self, customer_id: str, ruleset_key: str = "") -> str:
        """The same for every version of its ruleset (a new version does not grant a birthday again)."""
        raw = "\x1f".join((customer_id, "#occasion", self.kind, str(self.day), str(self.lead_days), self.ruleset_id))
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()

    @property
    def dimension(self) -> str:
        """How an action matches it (no dimension name starts with ``#``)."""
        return f"#{self.kind}"


def in_year(origin: date, year: int) -> date:
    """``origin``'s month and day in ``year`` (29 February: the 28th where ``year`` has none)."""
    if origin.month == 2 and origin.day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        return date(year, 2, 28)
    return origin.replace(year=year)


def birth_of(profile: Mapping[str, str | None]) -> date | None:
    """The birth date a profile carries (``BIRTH_DATE``), or None."""
    text = profile.get(BIRTH_DATE)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _origin(spec: OccasionSpec, birth: date | None, first_purchase: int | None) -> date | None:
    if spec.kind == BIRTHDAY:
        return birth
    return None if first_purchase is None else date.fromordinal(first_purchase)


def reached(specs: tuple[OccasionSpec, ...], birth: date | None, first_purchase: int | None, lo: int,
            hi: int) -> list[Occasion]:
    """The occasions whose wake day falls in ``[lo, hi]`` (at most the last ``CATCH_UP_DAYS`` of it), by wake."""
    lo = max(lo, hi - CATCH_UP_DAYS + 1)
    out = []
    for spec in specs:
        origin = _origin(spec, birth, first_purchase)
        if origin is None or hi < lo:
            continue
        for year in range(date.fromordinal(lo + spec.lead_days).year, date.fromordinal(hi + spec.lead_days).year + 1):
            if year <= origin.year or year > 9999:
                continue
            day = in_year(origin, year).toordinal()
            if lo <= day - spec.lead_days <= hi:
                out.append(Occasion(spec.kind, day, spec.lead_days, spec.ruleset_id))
    return sorted(out, key=lambda o: (o.wake, o.kind, o.lead_days, o.ruleset_id))


def next_wake(specs: tuple[OccasionSpec, ...], birth: date | None, first_purchase: int | None,
              after: int) -> int | None:
    """The first wake day after ``after`` of any occasion, or None."""
    best = None
    for spec in specs:
        origin = _origin(spec, birth, first_purchase)
        if origin is None:
            continue
        start = max(date.fromordinal(after + spec.lead_days).year, origin.year + 1)
        for year in (start, start + 1):
            if year > 9999:
                break
            wake = in_year(origin, year).toordinal() - spec.lead_days
            if wake > after:
                best = wake if best is None else min(best, wake)
                break
    return best
