"""Classify a customer under a ruleset as of a day, explain it, and find when it is next due."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from itertools import islice
from math import floor
from typing import Final

from segmenter.frozen import Frozen
from segmenter.metrics import NO_PROFILE, Profile, Value, display
from segmenter.policy import Policy
from segmenter.ranking import Ranks
from segmenter.rules.compiler import CompiledDimension, RuleSet
from segmenter.rules.conditions import Compiler
from segmenter.rules.syntax import BoolOp, Node, Not
from segmenter.state import WindowState, add_short, totals_at


def classify_values(ruleset: RuleSet, values: dict[str, Value]) -> tuple[str, ...]:
    """One segment per dimension, in the ruleset's dimension order."""
    return ruleset.classify_all(values)


def classify(ruleset: RuleSet, state: WindowState, as_of_day: int, policy: Policy,
             profile: Profile | None = None) -> tuple[str, ...]:
    """One segment per dimension, straight from the window totals (the hot path: no metric view)."""
    t = totals_at(state, as_of_day, policy)
    return ruleset.classify_totals(t.long, t.short, state.first_purchase, state.last_purchase, as_of_day,
                                   profile or NO_PROFILE, None, t.extra)


class Explanation(Frozen):
    """Why a dimension holds the segment it does."""

    _fields = ("dimension", "segment", "condition", "metrics", "rejected")
    __slots__ = _fields

    def __init__(self, dimension: str, segment: str, condition: str, metrics: Mapping[str, object],
                 rejected: tuple[str, ...]) -> None:
        self.dimension: Final = dimension
        self.segment: Final = segment
        self.condition: Final = condition  # the matching condition as written, or "default"
        self.metrics: Final = metrics  # the values the matching condition read
        self.rejected: Final = rejected  # for each earlier segment, the first reason it did not match


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
            return "(" + " or ".join(reasons) + ")"
        return all_failing
    if isinstance(node, Not):
        inner = _build_reason(node.item, scale)
        return lambda values: None if inner(values) else "the negated condition to be false"
    holds = Compiler(scale).compile(node)
    text = node.text
    return lambda values: None if holds(values) else text


def _failing(node: Node, values: dict[str, Value], scale: int) -> str | None:
    """What ``node`` needs that ``values`` lack: its first failing comparison as written (every branch of an
    ``or``), or None when it is true."""
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
        reason = _failing(segment.node, values, policy.money_scale) or segment.when
        readable = ", ".join([f"{k}={v}" for k, v in shown.items()])
        rejected.append(f"{segment.name}: needs {reason}, has {readable}")
    return Explanation(dim.name, dim.default, "default", {}, tuple(rejected))


def explain(ruleset: RuleSet, values: dict[str, Value], policy: Policy) -> tuple[Explanation, ...]:
    return tuple(explain_dimension(dim, values, policy) for dim in ruleset.dimensions)


SCAN = 3  # days at which due_day checks the classification (past them it may answer early, never late)


def due_day(ruleset: RuleSet, state: WindowState, as_of_day: int, policy: Policy, *,
            track_amount: bool = False, current: tuple[object, ...] | None = None,
            profile: Profile = NO_PROFILE, population: Ranks | None = None) -> int | None:
    """The first day after ``as_of_day`` on which the classification may change with no new event.

    Candidates: the oldest bucket of each window the rules read leaving that window, a bucket
    dated after ``as_of_day`` entering, and ``days_since_*`` metrics crossing a rule constant. The
    answer may be early (a wake-up that changes nothing) but is never late. ``track_amount`` also
    wakes when the long window changes though the rules do not read it (the projection keeps
    ``amount_12m``). With ``current`` (the classification as of ``as_of_day``, with ``profile``),
    short-window departures before the other candidates are checked, up to ``SCAN`` days: one that
    leaves the classification as it is wakes nobody. ``current`` is ``ruleset.judge_totals``' answer: the
    segments, then the truth of each tag condition (tags change with time like segments).
    """
    best: int | None = None
    buckets = state.buckets  # in day order
    reads_long, reads_short = ruleset.windows_read
    if buckets:
        long_start, short_start, _ = policy.starts(as_of_day)
        for reads, start, which in ((reads_long or track_amount, long_start, 0),
                                    (reads_short and current is None, short_start, 1)):
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
    if ruleset.reads_days_since:
        crossing = _next_crossing(ruleset, state, as_of_day)
        best = crossing if best is None or (crossing is not None and crossing < best) else best
    if buckets and reads_short and current is not None:
        changed = _short_change(ruleset, state, as_of_day, policy, current=current, profile=profile, before=best,
                                population=population)
        best = changed if best is None or (changed is not None and changed < best) else best
    return best


def _short_change(ruleset: RuleSet, state: WindowState, as_of_day: int, policy: Policy, *,
                  current: tuple[object, ...], profile: Profile, before: int | None,
                  population: Ranks | None = None) -> int | None:
    """The first day before ``before`` on which buckets leaving the short window change the
    classification; after ``SCAN`` unchanged days, the next such day (to look again then)."""
    t = totals_at(state, as_of_day, policy)
    short = list(t.short)
    leave_days, classify_totals, first, last = policy.leave_days, ruleset.judge_totals, state.first_purchase, \
        state.last_purchase
    buckets, checked, pending = state.buckets, 0, 0  # pending: the leave day whose buckets are subtracted so far
    for b in islice(buckets, bisect_left(buckets, (t.short_start,)), None):
        day = b[0]
        if day > as_of_day:
            break
        leave = leave_days(day)[1]
        if pending and leave != pending:  # every bucket leaving on ``pending`` is out (month ends can merge days)
            if classify_totals(t.long, tuple(short), first, last, pending, profile, population, t.extra) != current:
                return pending
            checked += 1
            if checked == SCAN:
                return leave if before is None or leave < before else None
        if before is not None and leave >= before:
            return None  # the long window, a crossing or a new bucket comes first: it is checked then
        add_short(short, b, -1)
        pending = leave
    if pending and classify_totals(t.long, tuple(short), first, last, pending, profile, population, t.extra) != current:
        return pending
    return None


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
