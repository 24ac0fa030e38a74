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

from segmenter.ranking import Ranks
from segmenter.state import Policy, WindowState, totals_at

Kind = Literal["count", "money", "days", "ratio", "text"]
Value = int | Fraction | str | None


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    kind: Kind
    window: Literal["long", "short", "both", "none", "population"]  # both: the long window less the short
    doc: str
    bounds: tuple[int, int] | None = None  # the values it can take (inclusive), when bounded


_INFO = [
    MetricInfo("purchases_12m", "count", "long", "purchases in the long window (default 12 months)"),
    MetricInfo("amount_12m", "money", "long", "purchase amount net of refunds, long window"),
    MetricInfo("purchases_6m", "count", "short", "purchases in the short window (default 6 months)"),
    MetricInfo("amount_6m", "money", "short", "purchase amount net of refunds, short window"),
    MetricInfo("purchases_prev_6m", "count", "both", "purchases in the long window before the short one (by default "
               "the six months before the last six: compare with purchases_6m for a trend)"),
    MetricInfo("amount_prev_6m", "money", "both", "amount_12m - amount_6m: the amount of the previous period"),
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
    MetricInfo("amount_12m_rank_pct", "ratio", "population", "share of the population (customers with a purchase "
               "in 12 months) with a greater amount_12m, in percent: 0 is the top (ABC: A is < 20)", (0, 100)),
    MetricInfo("purchases_12m_rank_pct", "ratio", "population", "the same by purchases_12m", (0, 100)),
    MetricInfo("rfm_r", "count", "population", "recency quintile: 5 for the fifth of the population that bought "
               "last most recently, 1 for the fifth that bought longest ago", (1, 5)),
    MetricInfo("rfm_f", "count", "population", "frequency quintile of purchases_12m (5: the top fifth)", (1, 5)),
    MetricInfo("rfm_m", "count", "population", "monetary quintile of amount_12m (5: the top fifth)", (1, 5)),
    MetricInfo("rfm_score", "text", "population", "the RFM cell as text, recency first, e.g. \"545\""),
]
METRICS: dict[str, MetricInfo] = {m.name: m for m in _INFO}
WINDOW_METRICS: tuple[str, ...] = tuple(m.name for m in _INFO if m.kind != "text" and m.window != "population")
POPULATION_METRICS: tuple[str, ...] = tuple(m.name for m in _INFO if m.window == "population")
PROFILE_FIELDS = {"profile.type": "customer_type", "profile.region": "region",
                  "profile.industry": "industry", "profile.size": "size"}

Profile = Mapping[str, str | None]
NO_PROFILE: Profile = {}


class MetricView(dict[str, Value]):
    """Metrics computed on first read from the window totals: rules pay only for what they use."""

    __slots__ = ("_first", "_last", "_long", "_short", "as_of", "population", "profile")

    def __init__(self, state: WindowState, as_of_day: int, policy: Policy, profile: Profile,
                 population: Ranks | None = None) -> None:
        super().__init__()
        totals = totals_at(state, as_of_day, policy)
        self._long, self._short = totals.long, totals.short
        self._first, self._last = state.first_purchase, state.last_purchase
        self.as_of, self.profile, self.population = as_of_day, profile, population

    def __missing__(self, name: str) -> Value:
        value = _FORMULAS[name](self)
        self[name] = value
        return value


# Each metric once, as a Python expression over ``lo`` and ``sh`` (the long and short window sums of
# ``Totals``), ``first`` and ``last`` (purchase days), ``d`` (the as-of day), ``p`` (the profile) and ``g`` (the
# population's ``segmenter.ranking.Ranks``; None: population metrics have no value).
# MetricView's lazy formulas and the rules' fused classifier (``RuleSet.classify_totals``) are both
# compiled from these.
SOURCES: dict[str, str] = {
    "purchases_12m": "lo[0]",
    "amount_12m": "lo[1]",
    "refunds_12m": "lo[2]",
    "interactions_12m": "lo[3]",
    "referrals_12m": "lo[4]",
    "satisfaction_avg_12m": "(_Fraction(lo[5], lo[6]) if lo[6] else None)",
    "avg_order_value_12m": "(_Fraction(lo[1], lo[0]) if lo[0] else None)",
    "purchases_prev_6m": "(lo[0] - sh[0])",
    "amount_prev_6m": "(lo[1] - sh[1])",
    "purchases_6m": "sh[0]",
    "amount_6m": "sh[1]",
    "interactions_6m": "sh[2]",
    "complaints_6m": "sh[3]",
    "days_since_last_purchase": "(None if last is None else d - last)",
    "days_since_first_purchase": "(None if first is None else d - first)",
    **{name: f"p.get({name!r})" for name in PROFILE_FIELDS},
    "amount_12m_rank_pct": "(g.rank(0, lo[1]) if g is not None and lo[0] and last is not None else None)",
    "purchases_12m_rank_pct": "(g.rank(1, lo[0]) if g is not None and lo[0] and last is not None else None)",
    "rfm_r": "(g.score(2, last) if g is not None and lo[0] and last is not None else None)",
    "rfm_f": "(g.score(1, lo[0]) if g is not None and lo[0] and last is not None else None)",
    "rfm_m": "(g.score(0, lo[1]) if g is not None and lo[0] and last is not None else None)",
    "rfm_score": "(g.cell(last, lo[0], lo[1]) if g is not None and lo[0] and last is not None else None)",
}


def _add(a: Value, b: Value) -> Value:
    return None if a is None or b is None else a + b  # type: ignore[operator]


def _sub(a: Value, b: Value) -> Value:
    return None if a is None or b is None else a - b  # type: ignore[operator]


def _mul(a: Value, b: Value) -> Value:
    return None if a is None or b is None else a * b  # type: ignore[operator]


def _div(a: Value, b: Value) -> Value:
    """Exact; no value where either side has none or the divisor is zero (a comparison with it is false)."""
    return None if a is None or not b else Fraction(a) / b  # type: ignore[operator]


ARITHMETIC = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div"}
"""The functions rules' arithmetic compiles to (``segmenter.rules.compiler``): a missing value stays missing."""
SOURCE_GLOBALS: dict[str, object] = {"__builtins__": {}, "_Fraction": Fraction, "_add": _add, "_sub": _sub,
                                     "_mul": _mul, "_div": _div}
TOTALS_ARGS = "lo, sh, first, last, d, p, g=None"


def _formula(source: str) -> Callable[[MetricView], Value]:
    of_totals = eval(f"lambda {TOTALS_ARGS}: {source}", dict(SOURCE_GLOBALS))  # noqa: S307 - our own constants
    return lambda v: of_totals(v._long, v._short, v._first, v._last, v.as_of, v.profile, v.population)


_FORMULAS: dict[str, Callable[[MetricView], Value]] = {name: _formula(src) for name, src in SOURCES.items()}
assert _FORMULAS.keys() == METRICS.keys()


def metric_view(state: WindowState, as_of_day: int, policy: Policy, profile: Profile = NO_PROFILE,
                population: Ranks | None = None) -> MetricView:
    """Lazily computed metrics of ``state`` as of ``as_of_day`` (the hot path)."""
    return MetricView(state, as_of_day, policy, profile, population)


def compute(state: WindowState, as_of_day: int, policy: Policy, profile: Profile = NO_PROFILE,
            population: Ranks | None = None) -> dict[str, Value]:
    """Every metric of ``state`` as of ``as_of_day``, as a plain dict (population metrics with ``population``)."""
    view = metric_view(state, as_of_day, policy, profile, population)
    return {name: view[name] for name in METRICS}


def display(name: str, value: Value, policy: Policy) -> int | Decimal | str | None:
    """A metric as people read it: money in currency units, ratios to two decimals."""
    if value is None or isinstance(value, str):
        return value
    kind = METRICS[name].kind
    if kind == "money":
        return policy.from_minor(value) if isinstance(value, int) else _round(
            Fraction(value) / 10**policy.money_scale, policy.money_scale)
    if kind == "ratio":
        return _round(Fraction(value), 2)  # a float (a rank estimated live) converts exactly
    return value if isinstance(value, int) else int(value)


def _round(value: Fraction, places: int) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-places))
