"""The metrics rules can read, computed from a window state as of a business day.

Money metrics are integers in minor units (cents) and ratios are exact ``Fraction`` values, so
comparisons at rule thresholds are exact. A metric with no value (never purchased) is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from segmenter.state import Policy, WindowState

Kind = Literal["count", "money", "days", "ratio", "text"]
Value = int | Fraction | str | None


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    kind: Kind
    window: Literal["long", "short", "none"]
    doc: str


_INFO = [
    MetricInfo("purchases_12m", "count", "long", "purchases in the long window (default 12 months)"),
    MetricInfo("amount_12m", "money", "long", "purchase amount net of refunds, long window"),
    MetricInfo("purchases_6m", "count", "short", "purchases in the short window (default 6 months)"),
    MetricInfo("amount_6m", "money", "short", "purchase amount net of refunds, short window"),
    MetricInfo("avg_order_value_12m", "money", "long", "amount_12m / purchases_12m"),
    MetricInfo("refunds_12m", "count", "long", "refunds in the long window"),
    MetricInfo("days_since_last_purchase", "days", "none", "whole days since the last purchase"),
    MetricInfo("days_since_first_purchase", "days", "none", "whole days since the first purchase"),
    MetricInfo("interactions_12m", "count", "long", "interactions of any kind, long window"),
    MetricInfo("interactions_6m", "count", "short", "interactions of any kind, short window"),
    MetricInfo("complaints_6m", "count", "short", "interactions of kind 'complaint', short window"),
    MetricInfo("satisfaction_avg_12m", "ratio", "long", "mean satisfaction (1-5) where given"),
    MetricInfo("referrals_12m", "count", "long", "interactions of kind 'referral', long window"),
    MetricInfo("profile.type", "text", "none", "individual or enterprise"),
    MetricInfo("profile.region", "text", "none", "the profile's region"),
    MetricInfo("profile.industry", "text", "none", "the profile's industry"),
    MetricInfo("profile.size", "text", "none", "the profile's size class"),
]
METRICS: dict[str, MetricInfo] = {m.name: m for m in _INFO}
WINDOW_METRICS: tuple[str, ...] = tuple(m.name for m in _INFO if m.kind != "text")
PROFILE_FIELDS = {"profile.type": "customer_type", "profile.region": "region",
                  "profile.industry": "industry", "profile.size": "size"}

Profile = Mapping[str, str | None]
NO_PROFILE: Profile = {}


def compute(state: WindowState, as_of_day: int, policy: Policy, profile: Profile = NO_PROFILE
            ) -> dict[str, Value]:
    """All metrics of ``state`` as of ``as_of_day`` (one pass over the buckets)."""
    long_start, short_start = policy.long_start(as_of_day), policy.short_start(as_of_day)
    p12 = a12 = r12 = i12 = ref12 = ss = sc = p6 = a6 = i6 = c6 = 0
    for b in state.buckets:
        day = b.day
        if day > as_of_day:
            break
        if day >= long_start:
            p12 += b.purchases
            a12 += b.amount
            r12 += b.refunds
            i12 += b.interactions
            ref12 += b.referrals
            ss += b.sat_sum
            sc += b.sat_count
        if day >= short_start:
            p6 += b.purchases
            a6 += b.amount
            i6 += b.interactions
            c6 += b.complaints
    first, last = state.first_purchase, state.last_purchase
    values: dict[str, Value] = {
        "purchases_12m": p12,
        "amount_12m": a12,
        "purchases_6m": p6,
        "amount_6m": a6,
        "avg_order_value_12m": Fraction(a12, p12) if p12 else None,
        "refunds_12m": r12,
        "days_since_last_purchase": None if last is None else as_of_day - last,
        "days_since_first_purchase": None if first is None else as_of_day - first,
        "interactions_12m": i12,
        "interactions_6m": i6,
        "complaints_6m": c6,
        "satisfaction_avg_12m": Fraction(ss, sc) if sc else None,
        "referrals_12m": ref12,
    }
    for name in PROFILE_FIELDS:
        values[name] = profile.get(name)
    return values


def display(name: str, value: Value, policy: Policy) -> int | Decimal | str | None:
    """A metric as people read it: money in currency units, ratios to two decimals."""
    if value is None or isinstance(value, str):
        return value
    kind = METRICS[name].kind
    if kind == "money":
        return policy.from_minor(int(value)) if isinstance(value, int) else _round(
            Fraction(value) / 10**policy.money_scale, policy.money_scale)
    if kind == "ratio":
        return _round(Fraction(value), 2)
    return int(value)


def _round(value: Fraction, places: int) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-places))
