"""The statistics report (各分类客户数量、占比、累计金额): per dimension, its segments by summed amount_12m, most
first, with their share of the customers and of the amount, and the cumulative shares (the Pareto columns: what
share of the revenue the top classes' customers hold). ``segmenter report`` and ``GET /segments`` both print it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Any

from segmenter.rules import RuleSet


@dataclass(frozen=True)
class ParetoRow:
    dimension: str
    segment: str
    customers: int
    share: float  # of the dimension's customers, percent
    amount_12m: Decimal
    amount_share: float  # of the dimension's amount_12m, percent
    cumulative_share: float  # customers of this segment and every one above it by amount, percent
    cumulative_amount_share: float
    label: str | None = None  # the segment's label in the rulesets in force, where one is written
    strategy: str | None = None  # and its strategy
    purchases_12m: int | None = None  # the members' purchases (``with_kpis``)
    avg_order_value_12m: str | None = None  # their amount over their purchases
    repurchase_rate: float | None = None  # the share of members with two purchases or more (复购率)

    def doc(self) -> dict[str, Any]:
        return {**asdict(self), "amount_12m": str(self.amount_12m)}


@dataclass
class SegmentKpi:
    """One segment's members: how many, their purchases and amount over the long window, and how many bought twice
    or more (复购)."""

    customers: int = 0
    purchases: int = 0
    amount_minor: int = 0
    repeat: int = 0

    def doc(self, money_scale: int) -> dict[str, Any]:
        aov = (Decimal(self.amount_minor) / self.purchases).scaleb(-money_scale).quantize(Decimal(1).scaleb(
            -money_scale)) if self.purchases else None
        return {"customers": self.customers, "purchases_12m": self.purchases,
                "avg_order_value_12m": None if aov is None else str(aov),
                "repurchase_rate": round(self.repeat / self.customers, 4) if self.customers else None}


def with_kpis(rows: list[ParetoRow], sums: Mapping[str, Mapping[bytes, bytes]], money_scale: int) -> list[ParetoRow]:
    """``rows`` with each segment's purchases, average order value and repurchase rate, from the sums the workers
    keep per dimension (``P:kpi:<dim>``: ``<segment>\x1fp`` purchases, ``<segment>\x1fr`` members who bought
    twice or more; as of each member's last write, as the amounts are)."""
    out = []
    for row in rows:
        kept = sums.get(row.dimension, {})
        kpi = SegmentKpi(row.customers, int(kept.get(f"{row.segment}\x1fp".encode(), 0)),
                         int(row.amount_12m.scaleb(money_scale)), int(kept.get(f"{row.segment}\x1fr".encode(), 0)))
        doc = kpi.doc(money_scale)
        out.append(replace(row, purchases_12m=doc["purchases_12m"], avg_order_value_12m=doc["avg_order_value_12m"],
                           repurchase_rate=doc["repurchase_rate"]))
    return out


def pareto(rows: Iterable[tuple[str, str, int, Decimal]]) -> list[ParetoRow]:
    """``(dimension, segment, customers, amount_12m)`` rows as the Pareto table, dimension by dimension."""
    rows = list(rows)
    out = []
    for dim in sorted({r[0] for r in rows}):
        mine = sorted((r for r in rows if r[0] == dim), key=lambda r: (-r[3], r[1]))
        customers, amount = sum(r[2] for r in mine) or 1, sum(r[3] for r in mine) or Decimal(1)
        cum_n, cum_a = 0, Decimal(0)
        for _, segment, count, money in mine:
            cum_n, cum_a = cum_n + count, cum_a + money
            out.append(ParetoRow(dim, segment, count, 100 * count / customers, money, float(100 * money / amount),
                                 100 * cum_n / customers, float(100 * cum_a / amount)))
    return out


def described(rows: list[ParetoRow], rulesets: Iterable[RuleSet]) -> list[ParetoRow]:
    """``rows`` with each segment's label and strategy from ``rulesets`` (those in force)."""
    dimensions = {d.name: d for ruleset in rulesets for d in ruleset.dimensions}
    out = []
    for row in rows:
        dim = dimensions.get(row.dimension)
        out.append(row if dim is None else replace(row, label=dim.labels.get(row.segment),
                                                   strategy=dim.strategies.get(row.segment)))
    return out
