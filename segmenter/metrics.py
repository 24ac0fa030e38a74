"""The metrics rules can read, computed from a window state as of a business day.

Money metrics are integers in minor units (cents) and ratios are exact ``Fraction`` values, so
comparisons at rule thresholds are exact. A metric with no value (never purchased) is ``None``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from segmenter.extras import ExtraSums
from segmenter.policy import Policy
from segmenter.ranking import Ranks
from segmenter.state import WindowState, totals_at

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
    MetricInfo("profit_12m", "money", "long", "profit of the transactions that carried one, net of refunds, long "
               "window; no value where none did"),
    MetricInfo("margin_12m", "ratio", "long", "profit_12m / the amount of the transactions that carried a profit "
               "(0.25 is 25 %); no value where that amount is not positive"),
    MetricInfo("top_category_12m", "text", "long", "the category with the greatest amount in the long window (ties: "
               "more purchases, then the name first in order); no value without categories"),
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
FAMILIES: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("category_amount_12m", "money", "long", "category_amount_12m('图书'): the amount net of refunds in "
               "one category, long window (0 where the customer bought none)"),
    MetricInfo("category_purchases_12m", "count", "long", "category_purchases_12m('图书'): purchases in one "
               "category, long window"),
)}
"""Metrics that take one quoted argument, a category: written ``name('category')``, each use its own metric."""
_CALLED = re.compile(r"(\w+)\((.*)\)", re.DOTALL)


def call_name(family: str, argument: str) -> str:
    """The metric name of a family's use with ``argument`` (how conditions and explanations show it)."""
    return f"{family}({argument!r})"


def called(name: str) -> tuple[str, str] | None:
    """``(family, argument)`` of a metric name written as a call of a family, or None."""
    match = _CALLED.fullmatch(name)
    if match is None or match.group(1) not in FAMILIES:
        return None
    try:
        argument = ast.literal_eval(match.group(2))
    except (ValueError, SyntaxError):
        return None
    return (match.group(1), argument) if isinstance(argument, str) and call_name(match.group(1), argument) == name \
        else None


METRICS: dict[str, MetricInfo] = {m.name: m for m in _INFO}
"""The metrics without an argument; ``metric_info`` and ``is_metric`` also know a family's uses."""
WINDOW_METRICS: tuple[str, ...] = tuple(m.name for m in _INFO if m.kind != "text" and m.window != "population")
POPULATION_METRICS: tuple[str, ...] = tuple(m.name for m in _INFO if m.window == "population")
PROFILE_FIELDS = {"profile.type": "customer_type", "profile.region": "region",
                  "profile.industry": "industry", "profile.size": "size"}

Profile = Mapping[str, str | None]
NO_PROFILE: Profile = {}


class MetricView(dict[str, Value]):
    """Metrics computed on first read from the window totals: rules pay only for what they use."""

    __slots__ = ("_extra", "_first", "_last", "_long", "_short", "as_of", "population", "profile")

    def __init__(self, state: WindowState, as_of_day: int, policy: Policy, profile: Profile,
                 population: Ranks | None = None) -> None:
        super().__init__()
        totals = totals_at(state, as_of_day, policy)
        self._long, self._short, self._extra = totals.long, totals.short, totals.extra
        self._first, self._last = state.first_purchase, state.last_purchase
        self.as_of, self.profile, self.population = as_of_day, profile, population

    def __missing__(self, name: str) -> Value:
        formula = _FORMULAS.get(name) or _family_formula(name)
        value = formula(self)
        self[name] = value
        return value


# Each metric once, as a Python expression over ``lo`` and ``sh`` (the long and short window sums of
# ``Totals``), ``first`` and ``last`` (purchase days), ``d`` (the as-of day), ``p`` (the profile), ``g`` (the
# population's ``segmenter.ranking.Ranks``; None: population metrics have no value) and ``xs`` (the long window's
# categories and profit, ``state.ExtraSums``; None where the customer's transactions carried neither).
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
    "profit_12m": "(xs[0] if xs is not None and xs[2] else None)",
    "margin_12m": "(_Fraction(xs[0], xs[1]) if xs is not None and xs[1] > 0 else None)",
    "top_category_12m": "_top(xs)",
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


def family_source(name: str) -> str:
    """The expression of a family's use (the argument written with ``repr``: a literal, never code)."""
    found = called(name)
    if found is None:
        raise KeyError(name)
    family, argument = found
    return f"_cat(xs, {argument!r}, {1 if family == 'category_amount_12m' else 0})"


def top_category(x: ExtraSums | None) -> str | None:
    """``top_category_12m``: of the categories bought in the long window, the one of the greatest amount net of
    refunds (then the most purchases, then the first name); None where none was bought."""
    if x is None:
        return None
    bought = [(-amount, -n, name) for name, (n, amount) in x.cats.items() if n > 0]
    return min(bought)[2] if bought else None


def _cat(x: ExtraSums | None, name: str, which: int) -> int:
    if x is None:
        return 0
    found = x.cats.get(name)
    return 0 if found is None else found[which]


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
                                     "_mul": _mul, "_div": _div, "_top": top_category, "_cat": _cat}
TOTALS_ARGS = "lo, sh, first, last, d, p, g=None, xs=None"


def _formula(source: str) -> Callable[[MetricView], Value]:
    of_totals = eval(f"lambda {TOTALS_ARGS}: {source}", dict(SOURCE_GLOBALS))  # noqa: S307 - our own constants
    return lambda v: of_totals(v._long, v._short, v._first, v._last, v.as_of, v.profile, v.population, v._extra)


_FORMULAS: dict[str, Callable[[MetricView], Value]] = {name: _formula(src) for name, src in SOURCES.items()}
assert _FORMULAS.keys() == METRICS.keys()


def metric_info(name: str) -> MetricInfo:
    """The description of a metric or of a family's use (``category_amount_12m('图书')``); KeyError for neither."""
    info = METRICS.get(name)
    if info is not None:
        return info
    found = called(name)
    if found is None:
        raise KeyError(name)
    family = FAMILIES[found[0]]
    return MetricInfo(name, family.kind, family.window, family.doc, family.bounds)


def is_metric(name: str) -> bool:
    """Whether ``name`` is a metric or a family's use."""
    return name in METRICS or called(name) is not None


def source_of(name: str) -> str:
    """A metric's expression over the totals (see ``SOURCES``), a family's use included."""
    source = SOURCES.get(name)
    return source if source is not None else family_source(name)


_USES: dict[str, Callable[[MetricView], Value]] = {}


def _family_formula(name: str) -> Callable[[MetricView], Value]:
    formula = _USES.get(name)
    if formula is None:
        if len(_USES) > 10_000:  # names come from rule texts: bounded like any cache of them
            _USES.clear()
        formula = _USES[name] = _formula(family_source(name))
    return formula


def metric_view(state: WindowState, as_of_day: int, policy: Policy, profile: Profile = NO_PROFILE,
                population: Ranks | None = None) -> MetricView:
    """Lazily computed metrics of ``state`` as of ``as_of_day`` (the hot path)."""
    return MetricView(state, as_of_day, policy, profile, population)


def compute(state: WindowState, as_of_day: int, policy: Policy, profile: Profile = NO_PROFILE,
            population: Ranks | None = None) -> dict[str, Value]:
    """Every metric of ``state`` as of ``as_of_day`` (population metrics with ``population``); a family's use
    (``category_amount_12m('图书')``) is computed when first read."""
    view = metric_view(state, as_of_day, policy, profile, population)
    for name in METRICS:
        view[name]
    return view


def display(name: str, value: Value, policy: Policy) -> int | Decimal | str | None:
    """A metric as people read it: money in currency units, ratios to two decimals."""
    if value is None or isinstance(value, str):
        return value
    kind = metric_info(name).kind
    if kind == "money":
        return policy.from_minor(value) if isinstance(value, int) else _round(
            Fraction(value) / 10**policy.money_scale, policy.money_scale)
    if kind == "ratio":
        return _round(Fraction(value), 2)  # a float (a rank estimated live) converts exactly
    return value if isinstance(value, int) else int(value)


def _round(value: Fraction, places: int) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal(1).scaleb(-places))
