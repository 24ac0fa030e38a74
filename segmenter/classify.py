"""Classify a customer under a ruleset as of a day, explain it, and find when it is next due."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import floor

from segmenter.metrics import METRICS, Profile, Value, display, metric_view
from segmenter.rules.compiler import CompiledDimension, Compiler, RuleSet
from segmenter.rules.syntax import BoolOp, Node, Not
from segmenter.state import Policy, WindowState


def classify_values(ruleset: RuleSet, values: dict[str, Value]) -> tuple[str, ...]:
    """One segment per dimension, in the ruleset's dimension order."""
    return tuple(dim.classify(values) for dim in ruleset.dimensions)


def classify(ruleset: RuleSet, state: WindowState, as_of_day: int, policy: Policy,
             profile: Profile | None = None) -> tuple[str, ...]:
    return classify_values(ruleset, metric_view(state, as_of_day, policy, profile or {}))


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a dimension holds the segment it does."""

    dimension: str
    segment: str
    condition: str  # the matching condition as written, or "default"
    metrics: Mapping[str, object]  # the values the matching condition read
    rejected: tuple[str, ...]  # for each earlier segment, the first reason it did not match


_COMPILED: dict[tuple[int, int], tuple[Node, Callable[[dict[str, Value]], bool]]] = {}


def _compiled(node: Node, scale: int) -> Callable[[dict[str, Value]], bool]:
    """The node's predicate, compiled once per node object (nodes live as long as their ruleset)."""
    entry = _COMPILED.get((id(node), scale))
    if entry is None or entry[0] is not node:
        if len(_COMPILED) > 4096:
            _COMPILED.clear()
        entry = _COMPILED[(id(node), scale)] = (node, Compiler(scale).compile(node))
    return entry[1]


def _failing(node: Node, values: dict[str, Value], scale: int) -> str | None:
    """The first comparison that makes ``node`` false, as text, or None when it is true."""
    if isinstance(node, BoolOp):
        reasons = [_failing(item, values, scale) for item in node.items]
        if node.op == "and":
            return next((r for r in reasons if r), None)
        return None if any(r is None for r in reasons) else " and ".join(r for r in reasons if r)
    if isinstance(node, Not):
        return None if _failing(node.item, values, scale) else "not (...) is false"
    holds = _compiled(node, scale)(values)
    return None if holds else f"{node.text} is false"


def explain_dimension(dim: CompiledDimension, values: dict[str, Value], policy: Policy) -> Explanation:
    rejected: list[str] = []
    for segment in dim.segments:
        shown = {m: display(m, values[m], policy) for m in segment.metrics}
        if segment.predicate(values):
            return Explanation(dim.name, segment.name, segment.when, shown, tuple(rejected))
        reason = _failing(segment.node, values, policy.money_scale) or "condition is false"
        readable = ", ".join(f"{k}={v}" for k, v in shown.items())
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
    used = ruleset.metrics
    windows = {"long", "short"} if every_window else {METRICS[m].window for m in used}
    candidates: list[int] = []
    spans = [(policy.long_window, policy.long_start)] if "long" in windows else []
    if "short" in windows:
        spans.append((policy.short_window, policy.short_start))
    for spec, start_of in spans:
        start = start_of(as_of_day)
        oldest = next((b.day for b in state.buckets if start <= b.day <= as_of_day), None)
        if oldest is not None:
            candidates.append(spec.leave_day(oldest))
    future = next((b.day for b in state.buckets if b.day > as_of_day), None)
    if future is not None:
        candidates.append(future)
    for metric, anchor in (("days_since_last_purchase", state.last_purchase),
                           ("days_since_first_purchase", state.first_purchase)):
        if anchor is None or metric not in used:
            continue
        for constant in ruleset.day_constants(metric):
            base = anchor + floor(constant)
            candidates.extend(d for d in (base, base + 1) if d > as_of_day)
    later = [d for d in candidates if d > as_of_day]
    return min(later) if later else None
