"""Classify a customer under a ruleset as of a day, explain it, and find when it is next due."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import floor

from segmenter.metrics import NO_PROFILE, Profile, Value, display
from segmenter.rules.compiler import CompiledDimension, Compiler, RuleSet
from segmenter.rules.syntax import BoolOp, Node, Not
from segmenter.state import Policy, WindowState, totals_at


def classify_values(ruleset: RuleSet, values: dict[str, Value]) -> tuple[str, ...]:
    """One segment per dimension, in the ruleset's dimension order."""
    return ruleset.classify_all(values)


def classify(ruleset: RuleSet, state: WindowState, as_of_day: int, policy: Policy,
             profile: Profile | None = None) -> tuple[str, ...]:
    """One segment per dimension, straight from the window totals (the hot path: no metric view)."""
    t = totals_at(state, as_of_day, policy)
    return ruleset.classify_totals(t.long, t.short, state.first_purchase, state.last_purchase, as_of_day,
                                   profile or NO_PROFILE)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a dimension holds the segment it does."""

    dimension: str
    segment: str
    condition: str  # the matching condition as written, or "default"
    metrics: Mapping[str, object]  # the values the matching condition read
    rejected: tuple[str, ...]  # for each earlier segment, the first reason it did not match


Reason = Callable[[dict[str, Value]], str | None]
_REASONS: dict[tuple[int, int], tuple[Node, Reason]] = {}


def _reason_of(node: Node, scale: int) -> Reason:
    """The node's "first failing comparison" function, built once per node object (nodes live as
    long as their ruleset; the entry keeps the node alive so its id is never reused meanwhile)."""
    entry = _REASONS.get((id(node), scale))
    if entry is None or entry[0] is not node:
        if len(_REASONS) > 4096:
            _REASONS.clear()
        entry = _REASONS[(id(node), scale)] = (node, _build_reason(node, scale))
    return entry[1]


def _build_reason(node: Node, scale: int) -> Reason:
    if isinstance(node, BoolOp):
        parts = [_build_reason(item, scale) for item in node.items]
        if node.op == "and":
            def first_failing(values: dict[str, Value]) -> str | None:
                for part in parts:
                    reason = part(values)
                    if reason:
                        return reason
                return None
            return first_failing

        def all_failing(values: dict[str, Value]) -> str | None:
            reasons = []
            for part in parts:
                reason = part(values)
                if reason is None:
                    return None
                reasons.append(reason)
            return " and ".join(reasons)
        return all_failing
    if isinstance(node, Not):
        inner = _build_reason(node.item, scale)
        return lambda values: None if inner(values) else "not (...) is false"
    holds = Compiler(scale).compile(node)
    text = f"{node.text} is false"
    return lambda values: None if holds(values) else text


def _failing(node: Node, values: dict[str, Value], scale: int) -> str | None:
    """The first comparison that makes ``node`` false, as text, or None when it is true."""
    return _reason_of(node, scale)(values)


def explain_dimension(dim: CompiledDimension, values: dict[str, Value], policy: Policy) -> Explanation:
    rejected: list[str] = []
    shown_all: dict[str, object] = {}  # each metric displayed once, though several segments read it
    for segment in dim.segments:
        shown = {}
        for m in segment.metrics:
            if m not in shown_all:
                shown_all[m] = display(m, values[m], policy)
            shown[m] = shown_all[m]
        if segment.predicate(values):
            return Explanation(dim.name, segment.name, segment.when, shown, tuple(rejected))
        reason = _failing(segment.node, values, policy.money_scale) or "condition is false"
        readable = ", ".join([f"{k}={v}" for k, v in shown.items()])
        rejected.append(f"{segment.name}: {reason} ({readable})")
    return Explanation(dim.name, dim.default, "default", {}, tuple(rejected))


def explain(ruleset: RuleSet, values: dict[str, Value], policy: Policy) -> tuple[Explanation, ...]:
    return tuple(explain_dimension(dim, values, policy) for dim in ruleset.dimensions)


def due_day(ruleset: RuleSet, state: WindowState, as_of_day: int, policy: Policy, *,
            every_window: bool = False) -> int | None:
    """The first day after ``as_of_day`` on which the classification may change with no new event.

    Candidates: the oldest bucket of each window the rules read leaving that window, a bucket
    dated after ``as_of_day`` entering, and ``days_since_*`` metrics crossing a rule constant. The
    answer may be early (a wake-up that changes nothing) but is never late. ``every_window`` also
    wakes when a window the rules do not read changes (to keep a projection of all metrics fresh).
    """
    best: int | None = None
    buckets = state.buckets  # in day order
    if buckets:
        long_start, short_start, _ = policy.starts(as_of_day)
        reads_long, reads_short = (True, True) if every_window else ruleset.windows_read
        for reads, start, which in ((reads_long, long_start, 0), (reads_short, short_start, 1)):
            if not reads:
                continue
            i = bisect_left(buckets, (start,))  # the oldest bucket inside the window
            if i < len(buckets) and (day := buckets[i][0]) <= as_of_day:  # unless it is in the future
                leave = policy.leave_days(day)[which]
                if leave > as_of_day and (best is None or leave < best):
                    best = leave
        if buckets[-1][0] > as_of_day:
            first_future = buckets[bisect_right(buckets, (as_of_day, _MAX))][0]
            if best is None or first_future < best:
                best = first_future  # the first bucket dated after as_of enters then
    if not ruleset.reads_days_since:
        return best
    crossing = _next_crossing(ruleset, state, as_of_day)
    return crossing if best is None or (crossing is not None and crossing < best) else best


_MAX = float("inf")  # sorts after any bucket of the same day


def _next_crossing(ruleset: RuleSet, state: WindowState, as_of_day: int) -> int | None:
    """The first day after ``as_of_day`` a ``days_since_*`` metric crosses a constant of the rules."""
    best: int | None = None
    used = ruleset.metrics
    for metric, anchor in (("days_since_last_purchase", state.last_purchase),
                           ("days_since_first_purchase", state.first_purchase)):
        if anchor is None or metric not in used:
            continue
        for constant in ruleset.day_constants(metric):
            base = anchor + floor(constant)
            for d in (base, base + 1):
                if d > as_of_day and (best is None or d < best):
                    best = d
    return best
