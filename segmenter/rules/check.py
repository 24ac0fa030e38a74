"""Static analysis of a ruleset: regions no segment covers, and segments that can never win.

Each metric a dimension reads is cut into cells at the constants it is compared with, so every
comparison is constant inside a cell. The product of the cells is evaluated once per combination,
skipping combinations that cannot happen (``purchases_6m <= purchases_12m`` …). Uncovered cells are
grown into boxes along each axis and printed as conditions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from math import ceil, floor

from segmenter.metrics import POPULATION_METRICS, Value, metric_info
from segmenter.rules.compiler import CompiledDimension, RuleSet

Number = int | Fraction
GAP, INFEASIBLE = -1, -2
MAX_CELLS = 50_000
_NULLABLE = {"avg_order_value_12m", "satisfaction_avg_12m", "days_since_last_purchase",
             "days_since_first_purchase", *POPULATION_METRICS}
_CONTINUOUS = {"avg_order_value_12m", "satisfaction_avg_12m", "amount_12m_rank_pct", "purchases_12m_rank_pct"}
_FAR = 10**9


@dataclass(frozen=True, slots=True)
class Cell:
    lo: Number | None = None  # None: unbounded
    hi: Number | None = None
    lo_open: bool = False
    hi_open: bool = False
    none: bool = False  # the "has no value" cell
    text: str | None = None
    candidates: tuple[Value, ...] = ()


@dataclass(frozen=True, slots=True)
class Axis:
    metric: str
    cells: tuple[Cell, ...]
    constants: tuple[str, ...] = ()  # text metrics: the values mentioned


def _constants(dim: CompiledDimension, metric: str) -> list[tuple[str, Number | str]]:
    out: list[tuple[str, Number | str]] = []
    for seg in dim.segments:
        for atom in seg.atoms:
            if atom.metric == metric:
                vals = atom.value if isinstance(atom.value, tuple) else (atom.value,)
                op = "==" if atom.op in ("in", "not in") else atom.op
                out.extend((op, v) for v in vals)
    return out


def _integral_axis(metric: str, consts: list[tuple[str, Number | str]]) -> tuple[Cell, ...]:
    cuts: set[int] = set()
    for op, c in consts:
        assert not isinstance(c, str)
        if op in (">=", "<"):
            cuts.add(ceil(c))
        elif op in (">", "<="):
            cuts.add(floor(c) + 1)
        elif Fraction(c).denominator == 1:
            cuts.update((int(c), int(c) + 1))
    limits = metric_info(metric).bounds
    floor_ = limits[0] if limits else 0 if metric_info(metric).kind in ("count", "days") else None
    bounds = sorted(c for c in cuts if floor_ is None or c > floor_)
    los: list[int | None] = [floor_, *bounds]
    his: list[int | None] = [*(b - 1 for b in bounds), None]
    cells = []
    for lo, hi in zip(los, his, strict=True):
        lo_c = lo if lo is not None else (hi or 0) - _FAR
        hi_c = hi if hi is not None else lo_c + _FAR
        cells.append(Cell(lo, hi, candidates=(lo_c, hi_c)))
    return tuple(cells)


def _continuous_axis(consts: list[tuple[str, Number | str]]) -> tuple[Cell, ...]:
    points = sorted({Fraction(c) for _, c in consts if not isinstance(c, str)})
    if not points:
        return (Cell(candidates=(Fraction(0),)),)
    cells = [Cell(None, points[0], hi_open=True, candidates=(points[0] - 1,))]
    for i, a in enumerate(points):
        b = points[i + 1] if i + 1 < len(points) else None
        cells.append(Cell(a, a, candidates=(a,)))
        mid = a + 1 if b is None else (a + b) / 2
        cells.append(Cell(a, b, lo_open=True, hi_open=True, candidates=(mid,)))
    return tuple(cells)


def build_axis(dim: CompiledDimension, metric: str) -> Axis:
    consts = _constants(dim, metric)
    if metric_info(metric).kind == "text":
        texts = tuple(sorted({str(c) for _, c in consts}))
        cells = (*(Cell(text=t, candidates=(t,)) for t in texts),
                 Cell(text=None, candidates=("\x00other",)), Cell(none=True, candidates=(None,)))
        return Axis(metric, cells, texts)
    cells = _continuous_axis(consts) if metric in _CONTINUOUS else _integral_axis(metric, consts)
    if metric in _NULLABLE:
        cells = (*cells, Cell(none=True, candidates=(None,)))
    return Axis(metric, cells)


def _in_bounds(metric: str, value: Value) -> bool:
    """A population metric within what it can be: a rank in [0, 100), a score in 1..5."""
    bounds = metric_info(metric).bounds
    if bounds is None or value is None or isinstance(value, str):
        return True
    return bounds[0] <= value < bounds[1] if metric_info(metric).kind == "ratio" else bounds[0] <= value <= bounds[1]


def _le(a: Value, b: Value) -> bool:
    return a is None or b is None or a <= b  # type: ignore[operator]


_INVARIANTS: list[Callable[[dict[str, Value]], bool]] = [
    lambda p: _le(p.get("purchases_6m"), p.get("purchases_12m")),
    lambda p: _le(p.get("purchases_prev_6m"), p.get("purchases_12m")),
    lambda p: _le(p.get("interactions_6m"), p.get("interactions_12m")),
    lambda p: _le(p.get("complaints_6m"), p.get("interactions_6m")),
    lambda p: _le(p.get("referrals_12m"), p.get("interactions_12m")),
    lambda p: "avg_order_value_12m" not in p or "purchases_12m" not in p
    or (p["avg_order_value_12m"] is None) == (p["purchases_12m"] == 0),
    lambda p: "days_since_last_purchase" not in p or p["days_since_last_purchase"] is not None
    or all(p.get(m) in (None, 0) for m in ("purchases_12m", "purchases_6m")),
    lambda p: _le(p.get("days_since_last_purchase"), p.get("days_since_first_purchase")),
    lambda p: all(_in_bounds(m, v) for m, v in p.items()),
    lambda p: len({p[m] is None for m in POPULATION_METRICS if m in p}) <= 1,  # ranked together, or not at all
    lambda p: "purchases_12m" not in p or all((p[m] is None) == (p["purchases_12m"] == 0)
                                              for m in POPULATION_METRICS if m in p),
    lambda p: ("days_since_last_purchase" not in p or "days_since_first_purchase" not in p)
    or (p["days_since_last_purchase"] is None) == (p["days_since_first_purchase"] is None),
]


def _point(axes: list[Axis], combo: tuple[int, ...]) -> dict[str, Value] | None:
    choices = [axis.cells[i].candidates for axis, i in zip(axes, combo, strict=True)]
    for values in itertools.product(*choices):
        point = {axis.metric: v for axis, v in zip(axes, values, strict=True)}
        if all(inv(point) for inv in _INVARIANTS):
            return point
    return None


@dataclass
class DimensionReport:
    name: str
    gaps: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    skipped: str | None = None


def check_dimension(dim: CompiledDimension, money_scale: int = 2) -> DimensionReport:
    report = DimensionReport(dim.name)
    if any(s.cross_metric for s in dim.segments):
        report.skipped = "a condition compares two metrics or computes; gap analysis needs metric-vs-constant"
        return report
    metrics = list(dict.fromkeys(m for s in dim.segments for m in s.metrics))
    axes = [build_axis(dim, m) for m in metrics]
    total = 1
    for axis in axes:
        total *= len(axis.cells)
    if total > MAX_CELLS:
        report.skipped = f"{total} combinations of cells, more than the {MAX_CELLS} analysed"
        return report
    result: dict[tuple[int, ...], int] = {}
    matched_any: set[int] = set()
    winners: dict[int, set[int]] = {i: set() for i in range(len(dim.segments))}
    for combo in itertools.product(*(range(len(a.cells)) for a in axes)):
        point = _point(axes, combo)
        if point is None:
            result[combo] = INFEASIBLE
            continue
        hits = [i for i, s in enumerate(dim.segments) if s.predicate(point)]
        result[combo] = hits[0] if hits else GAP
        matched_any.update(hits)
        for i in hits[1:]:
            winners[i].add(hits[0])
    first = set(result.values())
    for i, seg in enumerate(dim.segments):
        if i in first:
            continue
        if i not in matched_any:
            report.unreachable.append(f"{seg.name}: its condition can never be true")
        else:
            names = ", ".join(repr(dim.segments[w].name) for w in sorted(winners[i]))
            report.unreachable.append(f"{seg.name}: never wins, an earlier segment ({names}) always matches first")
    report.gaps = [_describe(axes, box, money_scale) for box in _boxes(axes, result)]
    return report


def _boxes(axes: list[Axis], result: dict[tuple[int, ...], int]) -> list[list[tuple[int, int]]]:
    boxes: list[list[tuple[int, int]]] = []
    free = dict(result)  # gap cells not yet reported by a box
    for combo, outcome in result.items():
        if outcome != GAP or free[combo] != GAP:
            continue
        box = [(i, i) for i in combo]
        for k, axis in enumerate(axes):
            box[k] = _grow(box, k, len(axis.cells), free)
        for cell in itertools.product(*(range(lo, hi + 1) for lo, hi in box)):
            if free[cell] == GAP:
                free[cell] = INFEASIBLE - 1  # reported: neither a gap nor a place to grow into
        boxes.append(box)
    return boxes


def _slab(box: list[tuple[int, int]], k: int, index: int) -> Iterable[tuple[int, ...]]:
    ranges = [range(lo, hi + 1) for lo, hi in box]
    ranges[k] = range(index, index + 1)
    return itertools.product(*ranges)


def _grow(box: list[tuple[int, int]], k: int, size: int, result: dict[tuple[int, ...], int]
          ) -> tuple[int, int]:
    """Widen axis k while the new slabs hold only gaps or impossible cells; keep an infeasible-only
    end only when it makes the axis whole (then the axis needs no words)."""
    lo, hi = box[k]
    kinds: dict[int, str] = {}
    while lo > 0 and (kind := _slab_kind(box, k, lo - 1, result)):
        lo -= 1
        kinds[lo] = kind
    while hi < size - 1 and (kind := _slab_kind(box, k, hi + 1, result)):
        hi += 1
        kinds[hi] = kind
    if (lo, hi) == (0, size - 1):
        return lo, hi
    while lo < box[k][0] and kinds[lo] == "infeasible":
        lo += 1
    while hi > box[k][1] and kinds[hi] == "infeasible":
        hi -= 1
    return lo, hi


def _slab_kind(box: list[tuple[int, int]], k: int, index: int, result: dict[tuple[int, ...], int]
               ) -> str | None:
    outcomes = {result[c] for c in _slab(box, k, index)}
    if outcomes <= {INFEASIBLE}:
        return "infeasible"
    return "gap" if outcomes <= {GAP, INFEASIBLE} else None


def _describe(axes: list[Axis], box: list[tuple[int, int]], scale: int) -> str:
    parts = [_describe_axis(axis, lo, hi, scale) for axis, (lo, hi) in zip(axes, box, strict=True)
             if (lo, hi) != (0, len(axis.cells) - 1)]
    return " and ".join(parts) or "every customer"


def _describe_axis(axis: Axis, lo: int, hi: int, scale: int) -> str:
    cells = axis.cells[lo : hi + 1]
    m = axis.metric
    no_value = cells[-1].none
    words = []
    cells = tuple(c for c in cells if not c.none)
    if cells and axis.constants:
        named = [repr(c.text) for c in cells if c.text is not None]
        if any(c.text is None for c in cells):
            taken = [repr(t) for t in axis.constants if repr(t) not in named]
            words.append(f"{m} != {taken[0]}" if len(taken) == 1 else f"{m} not in [{', '.join(taken)}]")
        elif named:
            words.append(f"{m} == {named[0]}" if len(named) == 1 else f"{m} in [{', '.join(named)}]")
    elif cells:
        words.append(_interval(m, cells[0], cells[-1], scale))
    if no_value:
        words.append(f"{m} has no value")
    return " or ".join(words) if len(words) < 2 else f"({' or '.join(words)})"


def _interval(m: str, first: Cell, last: Cell, scale: int) -> str:  # noqa: PLR0911 - one return per shape of interval
    money = metric_info(m).kind == "money"
    if m not in _CONTINUOUS:  # integer cells are closed [lo, hi]
        lo, hi = first.lo, last.hi
        if lo is not None and lo == hi:
            return f"{m} == {_num(lo, money, scale)}"
        low = None if lo is None or (lo == 0 and not money) else _num(lo, money, scale)
        up = None if hi is None else (f"< {_num(hi + 1, money, scale)}" if money else f"<= {hi}")
        if low and up:
            return f"{low} <= {m} {up}"
        if low:
            return f"{m} >= {low}"
        return f"{m} {up}" if up else f"{m} has a value"
    if first.lo is not None and first.lo == last.hi:
        return f"{m} == {_num(first.lo, money, scale)}"
    low = None if first.lo is None else _num(first.lo, money, scale)
    high = None if last.hi is None else _num(last.hi, money, scale)
    lo_op, hi_op = ("<" if first.lo_open else "<="), ("<" if last.hi_open else "<=")
    if low and high:
        return f"{low} {lo_op} {m} {hi_op} {high}"
    if low:
        return f"{m} {'>' if first.lo_open else '>='} {low}"
    return f"{m} {hi_op} {high}" if high else f"{m} has a value"


def _num(value: Number, money: bool, scale: int) -> str:
    """A constant as the rule author wrote it: money back from minor units (``scale`` decimals) to major."""
    v = Fraction(value) / 10**scale if money else Fraction(value)
    return str(v.numerator) if v.denominator == 1 else f"{float(v):g}"


def check_ruleset(ruleset: RuleSet) -> list[DimensionReport]:
    return [check_dimension(dim, ruleset.money_scale) for dim in ruleset.dimensions]
