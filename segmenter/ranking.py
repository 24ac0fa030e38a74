"""Population-relative metrics: where a customer stands among all customers (ABC, RFM quintiles).

The population is every customer with a purchase in the long window (``purchases_12m > 0``); the others have no
rank. Three values are ranked: ``amount_12m``, ``purchases_12m`` and the last purchase day (recency: a later day
ranks higher). A customer's rank is the share of the population with a strictly greater value, in percent:
``rank = 100 * greater / N``, 0 for the top customer, ties sharing one rank. The quintile score is
``5 - floor(rank / 20)``: 5 for the top fifth, 1 for the bottom one.

Exactly (``segmenter classify``) the ranks come from the sorted values of the whole population. Live, each input
partition summarises its own values (``summarise``): the exact count of each distinct value when there are at
most ``buckets`` of them (purchase counts and last-purchase days, in practice), else the values at ``buckets``
evenly spaced ranks (an equi-depth histogram). ``Ranks`` adds the partitions' summaries up. A summary of n values
in ``buckets`` buckets places a value at most half a bucket (n / (2 * buckets) values) from its true place, so the
merged rank is off by at most 50 / buckets percentage points (0.05 with the default 1,000), and not at all for
exactly counted values.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

RANKED = ("amount_12m", "purchases_12m", "last_purchase")
AMOUNT, PURCHASES, RECENCY = 0, 1, 2
QUINTILES = (20, 40, 60, 80)  # the rank boundaries of the scores
LOWEST = -(2**63)  # below any ranked value


@dataclass(frozen=True, slots=True)
class Summary:
    """One partition's distribution of one ranked value: ``exact`` (distinct values and their counts) or
    ``points`` (the values at ranks ``i * (n - 1) / buckets``, i = 0 .. buckets)."""

    n: int
    values: tuple[int, ...] = ()  # sorted distinct values (exact) or the equi-depth points
    counts: tuple[int, ...] = ()  # exact: cumulative counts (values <= values[i]); empty for points

    @property
    def exact(self) -> bool:
        return bool(self.counts) or self.n == 0

    def not_above(self, value: int) -> float:
        """How many of the n values are <= ``value`` (exact, or interpolated between the points)."""
        if self.n == 0:
            return 0
        i = bisect_right(self.values, value)
        if self.counts:
            return self.counts[i - 1] if i else 0
        if i == 0:
            return 0
        points = self.values
        if i == len(points):
            return self.n
        # points[i-1] <= value < points[i]: between rank(i-1) + 1 and rank(i) values are <= value; the middle
        # is off by at most half a bucket
        buckets = len(points) - 1
        below, above = round((i - 1) * (self.n - 1) / buckets) + 1, round(i * (self.n - 1) / buckets)
        return (below + above) / 2

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "values": list(self.values), "counts": list(self.counts)}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Summary:
        return cls(int(doc["n"]), tuple(int(v) for v in doc["values"]), tuple(int(c) for c in doc["counts"]))


def summarise(values: Sequence[int], buckets: float) -> Summary:
    """``values`` (sorted ascending) summarised in at most ``buckets`` + 1 numbers and counts."""
    return summarise_by(len(values), values.__getitem__, lambda v, i: bisect_right(values, v, i), buckets)


def summarise_by(n: int, value_at: Callable[[int], int], after: Callable[[int, int], int], buckets: float
                 ) -> Summary:
    """The summary of n sorted values read by position: ``value_at(i)`` is the i-th, ``after(v, i)`` the position
    past the last value equal to ``v`` (searching from ``i``): the exact counts when at most ``buckets`` values are
    distinct, else the values at ``buckets`` + 1 evenly spaced ranks."""
    if n == 0:
        return Summary(0)
    distinct: list[int] = []
    cumulative: list[int] = []
    i = 0
    while i < n and len(distinct) <= buckets:
        value = value_at(i)
        i = after(value, i)
        distinct.append(value)
        cumulative.append(i)
    if i >= n and len(distinct) <= buckets:
        return Summary(n, tuple(distinct), tuple(cumulative))
    count = int(buckets)
    return Summary(n, tuple(value_at(round(k * (n - 1) / count)) for k in range(count + 1)))


@dataclass(frozen=True)
class Ranks:
    """The population as the rules see it: per ranked value, the summaries of its parts (one exact summary
    offline, one per partition live). ``hysteresis``: the band, in rank points, the worker keeps a customer
    in its segment within (``segmenter.step``); ``shift``: added to every rank (how that band is applied).

    The parts are added up once, into one step function per ranked value: the sorted values any part names
    (``keys``) and how many customers are above each (``above``); between two keys no part's count moves, so
    a rank is one bisection. Ranks are floats: a rank equal to a rule's whole-number constant is computed
    exactly (a correctly rounded quotient of integers), and any other differs from it by far more than a float's
    error."""

    parts: tuple[tuple[Summary, ...], tuple[Summary, ...], tuple[Summary, ...]]
    hysteresis: float = 0.0
    key: str = ""  # names this version of the thresholds (population changes carry it)
    shift: float = 0.0
    totals: tuple[int, ...] = field(init=False)  # per ranked value: the population counted
    _steps: tuple[tuple[list[int], list[float]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "totals", tuple(sum(s.n for s in part) for part in self.parts))
        object.__setattr__(self, "_steps", tuple(_steps(part) for part in self.parts))

    @property
    def total(self) -> int:
        """The population: customers with a purchase in the long window."""
        return max(self.totals)

    @classmethod
    def exact(cls, amounts: Iterable[int], purchases: Iterable[int], lasts: Iterable[int], key: str = "exact"
              ) -> Ranks:
        """Exact ranks of a whole population (every value counted)."""
        made = [summarise(sorted(values), math.inf) for values in (amounts, purchases, lasts)]
        return cls(((made[0],), (made[1],), (made[2],)), key=key)

    def greater(self, metric: int, value: int) -> float:
        """How many of the population have a strictly greater ``metric`` than ``value``."""
        keys, above = self._steps[metric]
        i = bisect_right(keys, value)
        return above[i - 1] if i else self.totals[metric]

    def rank(self, metric: int, value: int) -> float:
        """The share of the population strictly above ``value``, in percent (0: the top)."""
        total = self.totals[metric]
        rank = 100 * self.greater(metric, value) / total if total else 0.0
        if self.shift:
            rank = min(max(rank + self.shift, 0.0), 99.999999)
        return rank

    def score(self, metric: int, value: int) -> int:
        """The quintile: 5 for the top fifth of the population, 1 for the bottom fifth."""
        return 5 - min(4, math.floor(self.rank(metric, value) / 20))

    def cell(self, last: int, purchases: int, amount: int) -> str:
        """The RFM cell, e.g. ``"545"``: recency, frequency and monetary scores."""
        return f"{self.score(RECENCY, last)}{self.score(PURCHASES, purchases)}{self.score(AMOUNT, amount)}"

    def shifted(self, delta: float) -> Ranks:
        out = object.__new__(Ranks)
        for name in ("parts", "hysteresis", "key", "totals", "_steps"):
            object.__setattr__(out, name, getattr(self, name))
        object.__setattr__(out, "shift", self.shift + delta)
        return out

    def cutoff(self, metric: int, rank: float) -> int | None:
        """The smallest value whose rank is below ``rank`` (a customer with it or more is above the boundary);
        None when no value is, ``LOWEST`` when every value is (an empty population ranks everyone 0). Found by
        bisection over the keys (ranks change only at them)."""
        if not self.totals[metric]:
            return LOWEST if self.shift < rank else None
        keys = self._steps[metric][0]
        lo, hi = 0, len(keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.rank(metric, keys[mid]) < rank:
                hi = mid
            else:
                lo = mid + 1
        return keys[lo] if lo < len(keys) else None


def _steps(parts: Sequence[Summary]) -> tuple[list[int], list[float]]:
    """The parts' summaries added up: every value any of them names, and how many are above it."""
    if len(parts) == 1 and parts[0].counts:  # one exact summary (offline): its own values and counts
        only = parts[0]
        return list(only.values), [only.n - c for c in only.counts]
    keys = sorted({v for s in parts for v in s.values})
    above = [0.0] * len(keys)
    for s in parts:
        if s.n:
            for i, key in enumerate(keys):
                above[i] += s.n - s.not_above(key)
    return keys, above
