"""Per-customer rolling-window state as a value: sparse day buckets, ``apply`` and ``advance``.

The state keeps one bucket per business day that saw an event, inside the longest window only.
Each bucket also holds 64-bit hashes of the ``event_id`` values applied on that day, so a repeated
event changes nothing; the hashes leave with their bucket, and an event that old is refused anyway.

Product categories and profit are kept apart from the buckets, in ``Extra`` entries for the days whose
transactions carried them: a customer whose transactions carry neither costs nothing more, and categories are
bounded per customer (the ``Policy.max_categories`` of the greatest amount keep their names; the rest count as
``OTHER``).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from enum import Enum
from typing import NamedTuple

from segmenter.extras import NO_EXTRA, Extra, ExtraSums, extra_sums, rolled, shifted, with_transaction
from segmenter.policy import Policy

PURCHASE, REFUND, INTERACTION = 0, 1, 2


class Fact(NamedTuple):
    """An event reduced to what the windows need (build one with ``facts.fact_of_*``)."""

    day: int
    kind: int  # PURCHASE, REFUND or INTERACTION
    amount: int = 0  # minor currency units, never negative
    id_hash: bytes = bytes(8)  # the event id's 64-bit hash, 8 bytes big-endian (``hash_event_id``)
    complaint: bool = False
    referral: bool = False
    satisfaction: int = 0  # 1..5, 0 when not given
    category: str = ""  # the transaction's product category, "" when not given
    profit: int | None = None  # the transaction's profit in minor units (negative: a loss), None when not given


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
    ids: bytes = b""  # the day's event-id hashes, 8 bytes each, ascending (an int and a tuple slot each cost 5x)


class Totals(NamedTuple):
    """Window sums as of one day, kept beside the buckets so a classification is O(1).

    ``long``: purchases, amount, refunds, interactions, referrals, sat_sum, sat_count;
    ``short``: purchases, amount, interactions, complaints. Derived data: never serialised.
    """

    as_of: int
    long_start: int
    short_start: int
    long: tuple[int, int, int, int, int, int, int]
    short: tuple[int, int, int, int]
    extra: ExtraSums | None = None  # the long window's categories and profit, when the state holds any


class WindowState:
    """One customer's windows: buckets in day order plus first/last purchase days (a value)."""

    __slots__ = ("buckets", "extras", "first_purchase", "last_purchase", "totals")

    def __init__(self, buckets: tuple[Bucket, ...] = (), first_purchase: int | None = None,
                 last_purchase: int | None = None, totals: Totals | None = None,
                 extras: tuple[Extra, ...] = ()) -> None:
        self.buckets = buckets
        self.first_purchase = first_purchase
        self.last_purchase = last_purchase
        self.totals = totals
        self.extras = extras

    def key(self) -> tuple[tuple[Bucket, ...], int | None, int | None, tuple[Extra, ...]]:
        return self.buckets, self.first_purchase, self.last_purchase, self.extras

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowState) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        extras = f", extras={self.extras!r}" if self.extras else ""
        return (f"WindowState(buckets={self.buckets!r}, first={self.first_purchase}, last={self.last_purchase}"
                f"{extras})")


EMPTY = WindowState()


class Outcome(Enum):
    """What ``apply`` did with an event."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    TOO_OLD = "too_old"


def hash_event_id(event_id: str) -> bytes:
    """A stable 64-bit hash of an event id, as 8 bytes (stable across processes, unlike ``hash``)."""
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


def _position(ids: bytes, key: bytes) -> int:
    """The byte offset at which the 8-byte ``key`` is, or would go, in ``ids`` (8-byte hashes, ascending; byte
    order is numeric order for big-endian hashes of one width)."""
    lo, hi = 0, len(ids) >> 3
    while lo < hi:
        mid = (lo + hi) >> 1
        at = mid << 3
        if ids[at : at + 8] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo << 3


new_tuple = tuple.__new__  # a NamedTuple without its Python-level __new__ (timeit: 0.14 µs a bucket, not 0.37)


def _added(bucket: Bucket, fact: Fact, at: int) -> Bucket:
    """``bucket`` with ``fact`` folded in; its id hash goes to byte offset ``at`` (ids stay ascending)."""
    d, p, a, r, i, c, ref, ss, sc, ids = bucket
    ids = ids[:at] + fact.id_hash + ids[at:]
    if fact.kind == PURCHASE:
        return new_tuple(Bucket, (d, p + 1, a + fact.amount, r, i, c, ref, ss, sc, ids))
    if fact.kind == REFUND:
        return new_tuple(Bucket, (d, p, a - fact.amount, r + 1, i, c, ref, ss, sc, ids))
    sat = fact.satisfaction
    return new_tuple(Bucket, (d, p, a, r, i + 1, c + fact.complaint, ref + fact.referral, ss + sat, sc + (sat > 0),
                              ids))


def _fresh(fact: Fact) -> Bucket:
    """The bucket of a day that had no event yet (the common case: built in one step)."""
    day, kind, amount, id_hash, complaint, referral, sat, _, _ = fact
    if kind == PURCHASE:
        return new_tuple(Bucket, (day, 1, amount, 0, 0, 0, 0, 0, 0, id_hash))
    if kind == REFUND:
        return new_tuple(Bucket, (day, 0, -amount, 1, 0, 0, 0, 0, 0, id_hash))
    return new_tuple(Bucket, (day, 0, 0, 0, 1, int(complaint), int(referral), sat, int(sat > 0), id_hash))


def apply(state: WindowState, fact: Fact, now_day: int, policy: Policy) -> tuple[WindowState, Outcome]:
    """Fold one event into the state as of stream day ``now_day``."""
    day = fact.day
    if day < policy.starts(now_day)[2]:  # older than every window
        return _dated_only(state, fact), Outcome.TOO_OLD
    buckets = state.buckets
    i = len(buckets)
    while i and buckets[i - 1].day > day:
        i -= 1
    if i and buckets[i - 1].day == day:
        old = buckets[i - 1]
        ids = old.ids  # ascending: a very active customer's day stays O(log n) to check
        at = _position(ids, fact.id_hash)
        if ids[at : at + 8] == fact.id_hash:
            return state, Outcome.DUPLICATE
        buckets = (*buckets[: i - 1], _added(old, fact, at), *buckets[i:])
    else:
        fresh = _fresh(fact)
        buckets = (*buckets, fresh) if i == len(buckets) else (*buckets[:i], fresh, *buckets[i:])
    first, last = state.first_purchase, state.last_purchase
    if fact.kind == PURCHASE:
        first = day if first is None or day < first else first
        last = day if last is None or day > last else last
    totals = _with_fact(totals_at(state, now_day, policy), fact)  # roll first: the view after is O(1)
    extras = state.extras
    if fact.kind != INTERACTION and (fact.category or fact.profit is not None):
        sums = totals.extra if state.extras else NO_EXTRA
        extras, added = with_transaction(extras, fact, NO_EXTRA.cats if sums is None else sums.cats,
                                         policy.max_categories, refund=fact.kind == REFUND)
        if added is None or sums is None:  # another category folded into OTHER: summed again
            sums = extra_sums(extras, totals.long_start, totals.as_of)
        elif totals.long_start <= fact.day <= totals.as_of:
            sums = shifted(sums, (added,), ())
        totals = _with_sums(totals, sums)
    return WindowState(buckets, first, last, totals, extras), Outcome.APPLIED


def _with_sums(t: Totals, sums: ExtraSums | None) -> Totals:
    return new_tuple(Totals, (t.as_of, t.long_start, t.short_start, t.long, t.short, sums))


def _dated_only(state: WindowState, fact: Fact) -> WindowState:
    """A purchase too old for every window still dates the first/last purchase (min/max: idempotent)."""
    first, last = state.first_purchase, state.last_purchase
    if fact.kind != PURCHASE or (first is not None and first <= fact.day and last is not None and last >= fact.day):
        return state
    first = fact.day if first is None else min(first, fact.day)
    last = fact.day if last is None else max(last, fact.day)
    return WindowState(state.buckets, first, last, state.totals, state.extras)


def advance(state: WindowState, now_day: int, policy: Policy) -> WindowState:
    """Drop the buckets that have left every window as of ``now_day``."""
    buckets = state.buckets
    if not buckets:
        return state
    horizon = policy.horizon_start(now_day)
    if buckets[0].day >= horizon:
        return state
    keep = next((i for i, b in enumerate(buckets) if b.day >= horizon), len(buckets))
    extras = state.extras
    if extras and extras[0].day < horizon:
        extras = extras[next((i for i, e in enumerate(extras) if e.day >= horizon), len(extras)) :]
    return WindowState(buckets[keep:], state.first_purchase, state.last_purchase,
                       totals_at(state, now_day, policy), extras)


def _long(lo: list[int], b: Bucket, sign: int) -> None:
    lo[0] += sign * b.purchases
    lo[1] += sign * b.amount
    lo[2] += sign * b.refunds
    lo[3] += sign * b.interactions
    lo[4] += sign * b.referrals
    lo[5] += sign * b.sat_sum
    lo[6] += sign * b.sat_count


def add_short(sh: list[int], b: Bucket, sign: int) -> None:
    """Add (``sign`` 1) or take out (-1) a bucket from the short window's sums (``Totals.short``)."""
    sh[0] += sign * b.purchases
    sh[1] += sign * b.amount
    sh[2] += sign * b.interactions
    sh[3] += sign * b.complaints


_ZERO_LONG = (0, 0, 0, 0, 0, 0, 0)
_ZERO_SHORT = (0, 0, 0, 0)


def totals_at(state: WindowState, as_of: int, policy: Policy) -> Totals:
    """The window sums as of ``as_of``: reused, rolled forward from the cached day, or summed.

    The result is memoised on the state (derived data, like a cached property of a value)."""
    t = state.totals
    if t is not None and t.as_of == as_of:
        return t
    ls, ss, _ = policy.starts(as_of)
    if not state.buckets:
        return new_tuple(Totals, (as_of, ls, ss, _ZERO_LONG, _ZERO_SHORT, None))
    if t is None or as_of < t.as_of or ls < t.long_start or ss < t.short_start:
        t = _summed(state.buckets, as_of, ls, ss)
        if state.extras:
            t = _with_sums(t, extra_sums(state.extras, ls, as_of))
    else:
        old = t
        t = _rolled(state.buckets, t, as_of, ls, ss)
        if state.extras:
            t = _with_sums(t, extra_sums(state.extras, ls, as_of) if old.extra is None else
                           rolled(state.extras, old.extra, old_as_of=old.as_of, old_start=old.long_start,
                                  as_of=as_of, long_start=ls))
    state.totals = t
    return t


def amount_12m_minor(state: WindowState, as_of: int, policy: Policy) -> int:
    """The 12-month net amount in minor units as of ``as_of`` (what Redis sums per segment)."""
    return totals_at(state, as_of, policy).long[1]


def _summed(buckets: tuple[Bucket, ...], as_of: int, ls: int, ss: int) -> Totals:
    lo, sh = list(_ZERO_LONG), list(_ZERO_SHORT)
    for b in buckets:
        if b.day > as_of:
            break
        if b.day >= ls:
            _long(lo, b, 1)
        if b.day >= ss:
            add_short(sh, b, 1)
    return new_tuple(Totals, (as_of, ls, ss, tuple(lo), tuple(sh), None))


def _rolled(buckets: tuple[Bucket, ...], t: Totals, as_of: int, ls: int, ss: int) -> Totals:  # noqa: PLR0912 - hot path, kept inline
    """Move totals from ``t.as_of`` to ``as_of``: only buckets that leave (oldest first) or enter
    (newest last) are touched, so the cost is the change, not the history."""
    lo: list[int] | None = None
    sh: list[int] | None = None
    old = t.as_of
    if ls > t.long_start:
        for b in buckets:
            d = b.day
            if d >= ls or d > old:
                break
            if d >= t.long_start:
                lo = lo or list(t.long)
                _long(lo, b, -1)
    if ss > t.short_start:
        for b in buckets[bisect_left(buckets, (t.short_start,)) :]:  # (day,) sorts before that day's bucket
            d = b.day
            if d >= ss or d > old:
                break
            sh = sh or list(t.short)
            add_short(sh, b, -1)
    if buckets[-1].day > old:
        for b in reversed(buckets):
            d = b.day
            if d <= old:
                break
            if d <= as_of:
                if d >= ls:
                    lo = lo or list(t.long)
                    _long(lo, b, 1)
                if d >= ss:
                    sh = sh or list(t.short)
                    add_short(sh, b, 1)
    return new_tuple(Totals, (as_of, ls, ss, t.long if lo is None else tuple(lo), t.short if sh is None else tuple(sh),
                              t.extra))


def _with_fact(t: Totals, fact: Fact) -> Totals:
    """Fold a new fact into totals as of their own day; later days are added when they roll."""
    day = fact.day
    in_long, in_short = t.long_start <= day <= t.as_of, t.short_start <= day <= t.as_of
    if not (in_long or in_short):
        return t
    lo, sh = t.long, t.short
    kind, amount = fact.kind, fact.amount
    if kind == PURCHASE:
        if in_long:
            lo = (lo[0] + 1, lo[1] + amount, *lo[2:])
        if in_short:
            sh = (sh[0] + 1, sh[1] + amount, sh[2], sh[3])
    elif kind == REFUND:
        if in_long:
            lo = (lo[0], lo[1] - amount, lo[2] + 1, *lo[3:])
        if in_short:
            sh = (sh[0], sh[1] - amount, sh[2], sh[3])
    else:
        sat = fact.satisfaction
        if in_long:
            lo = (*lo[:3], lo[3] + 1, lo[4] + fact.referral, lo[5] + sat, lo[6] + (sat > 0))
        if in_short:
            sh = (sh[0], sh[1], sh[2] + 1, sh[3] + fact.complaint)
    return new_tuple(Totals, (t.as_of, t.long_start, t.short_start, lo, sh, t.extra))
