"""The peer's windows and rules, apart from Quix Streams so that tests can check them against segmenter's
(``tests/bench/test_peers.py``). Plain Python: the peer's environment has nothing of segmenter's."""

from __future__ import annotations

import calendar
from datetime import date

LONG_MONTHS, SHORT_MONTHS = 12, 6


def months_back(day: int, months: int) -> int:
    """The first day inside a ``months``-month window as of ``day`` (ordinals): the day after the same date
    ``months`` calendar months earlier, clamped to that month's last day."""
    d = date.fromordinal(day)
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1])).toordinal() + 1


def segment(purchases_12m: int, amount_12m: int, purchases_6m: int) -> str:
    """retail-value.yaml's value dimension, first match wins (amounts in cents)."""
    if purchases_6m == 0 and purchases_12m > 0:
        return "churn_risk"
    if purchases_12m >= 10 and amount_12m >= 1_000_000:
        return "high_value"
    if (5 <= purchases_12m <= 9 and 500_000 <= amount_12m < 1_000_000) or (
            purchases_12m >= 10 and amount_12m < 1_000_000):
        return "mid_value"
    if 1 <= purchases_12m <= 4 and amount_12m < 500_000:
        return "low_value"
    return "unclassified"


def totals(buckets: list[list[int]], day: int) -> tuple[int, int, int]:
    """(purchases_12m, amount_12m, purchases_6m) as of ``day`` from [day, purchases, amount] buckets."""
    long_start, short_start = months_back(day, LONG_MONTHS), months_back(day, SHORT_MONTHS)
    p12 = a12 = p6 = 0
    for bucket_day, purchases, amount in buckets:
        if long_start <= bucket_day <= day:
            p12 += purchases
            a12 += amount
            if bucket_day >= short_start:
                p6 += purchases
    return p12, a12, p6


def fold(buckets: list[list[int]], day: int, purchase: bool, cents: int, now: int) -> list[list[int]] | None:
    """``buckets`` with one event of ``day`` folded in (a refund: ``purchase`` False, its amount taken off) and
    those older than the long window as of stream day ``now`` dropped; None when the event itself is that old."""
    long_start = months_back(now, LONG_MONTHS)
    if day < long_start:
        return None
    signed = cents if purchase else -cents
    for bucket in buckets:
        if bucket[0] == day:
            bucket[1] += purchase
            bucket[2] += signed
            break
    else:
        buckets.append([day, int(purchase), signed])
        buckets.sort()
    return [b for b in buckets if b[0] >= long_start]
