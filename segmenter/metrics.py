"""The metrics rules can read, computed from a window state as of a business day.

Money metrics are integers in minor units (cents) and ratios are exact ``Fraction`` values, so
comparisons at rule thresholds are exact. A metric with no value (never purchased) is ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from segmenter.state import Policy, WindowState, totals_at

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


class MetricView(dict[str, Value]):
    """Metrics computed on first read from the window totals: rules pay only for what they use."""

    __slots__ = ("_first", "_last", "_long", "_short", "as_of", "profile")

    def __init__(self, state: WindowState, as_of_day: int, policy: Policy, profile: Profile) -> None:
        super().__init__()
        totals = totals_at(state, as_of_day, policy)
        self._long, self._short = totals.long, totals.short
        self._first, self._last = state.first_purchase, state.last_purchase
        self.as_of, self.profile = as_of_day, profile

    def __missing__(self, name: str) -> Value:
        value = _FORMULAS[name](self)
        self[name] = value
        return value


def _since(anchor: int | None, view: MetricView) -> int | None:
    return None if anchor is None else view.as_of - anchor


_FORMULAS: dict[str, Callable[[MetricView], Value]] = {
    "purchases_12m": lambda v: v._long[0],
    "amount_12m": lambda v: v._long[1],
    "refunds_12m": lambda v: v._long[2],
    "interactions_12m": lambda v: v._long[3],
    "referrals_12m": lambda v: v._long[4],
    "satisfaction_avg_12m": lambda v: Fraction(v._long[5], v._long[6]) if v._long[6] else None,
    "avg_order_value_12m": lambda v: Fraction(v._long[1], v._long[0]) if v._long[0] else None,
    "purchases_6m": lambda v: v._short[0],
    "amount_6m": lambda v: v._short[1],
    "interactions_6m": lambda v: v._short[2],
    "complaints_6m": lambda v: v._short[3],
    "days_since_last_purchase": lambda v: _since(v._last, v),
    "days_since_first_purchase": lambda v: _since(v._first, v),
}
for _name in PROFILE_FIELDS:
    _FORMULAS[_name] = lambda v, n=_name: v.profile.get(n)  # type: ignore[misc]


def metric_view(state: WindowState, as_of_day: int, policy: Policy, profile: Profile = NO_PROFILE
                ) -> MetricView:
    """Lazily computed metrics of ``state`` as of ``as_of_day`` (the hot path)."""
    return MetricView(state, as_of_day, policy, profile)


def compute(state: WindowState, as_of_day: int, policy: Policy, profile: Profile = NO_PROFILE
            ) -> dict[str, Value]:
    """Every metric of ``state`` as of ``as_of_day``, as a plain dict."""
    view = metric_view(state, as_of_day, policy, profile)
    return {name: view[name] for name in METRICS}


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
