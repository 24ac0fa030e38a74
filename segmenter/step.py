"""The stateful step of the worker, as pure functions over a per-customer record.

``on_fact``, ``on_time`` and ``on_rules`` take a record and return the new record and the segment
changes (one per dimension that moved), each with the explanation of its new segment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

from segmenter.classify import Explanation, due_day, explain_dimension
from segmenter.frozen import Frozen
from segmenter.metrics import NO_PROFILE, Profile, display, metric_view
from segmenter.occasions import Occasion, birth_of, next_wake, reached
from segmenter.policy import Policy
from segmenter.ranking import Ranks
from segmenter.record import (
    OVERRIDES_TAG,
    CustomerRecord,
    ManualTag,
    Override,
    dumps,
    loads,
    loads_encoded,
    loads_shallow,
    tagset,
)
from segmenter.rules.compiler import RuleSet
from segmenter.rules.rulebook import keys_of
from segmenter.state import Fact, Outcome, Totals, WindowState, advance, apply, new_tuple, totals_at

__all__ = [  # the record and its stored form live in segmenter.record; named here too, as callers know them
    "LEFT", "OVERRIDES_TAG", "AnyChange", "Change", "CustomerRecord", "ManualTag", "Override", "TagChange", "dumps",
    "loads", "loads_encoded", "loads_shallow", "on_fact", "on_override", "on_population", "on_profile", "on_rules",
    "on_tag", "on_time", "tagset",
]


class TagChange(Frozen):
    """A tag added (``added``) or removed, and why."""

    _fields = ("tag", "added", "cause", "cause_key", "condition", "metrics")
    __slots__ = _fields

    def __init__(self, tag: str, added: bool, cause: str, cause_key: str, condition: str, *,
                 metrics: Mapping[str, object]) -> None:
        self.tag: Final = tag
        self.added: Final = added
        self.cause: Final = cause  # event | time | rules | manual
        self.cause_key: Final = cause_key
        self.condition: Final = condition
        self.metrics: Final = metrics

    def change_id(self, customer_id: str, ruleset_key: str) -> str:
        raw = "\x1f".join((customer_id, "#tag", self.tag, "+" if self.added else "-", ruleset_key, self.cause,
                           self.cause_key))
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


class Change(Frozen):
    """A dimension's segment changed (``before`` None: its first), and why."""

    _fields = ("dimension", "before", "after", "cause", "cause_key", "explanation")
    __slots__ = _fields

    def __init__(self, dimension: str, before: str | None, after: str | None, cause: str, cause_key: str, *,
                 explanation: Explanation) -> None:
        self.dimension: Final = dimension
        self.before: Final = before
        self.after: Final = after  # None: the dimension left with its ruleset (``LEFT``)
        self.cause: Final = cause  # event | time | rules
        self.cause_key: Final = cause_key  # event id, due day or ruleset version: makes the change id deterministic
        self.explanation: Final = explanation

    def change_id(self, customer_id: str, ruleset_key: str) -> str:
        raw = "\x1f".join((customer_id, self.dimension, self.before or "", self.after or "", ruleset_key,
                           self.cause, self.cause_key))
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


AnyChange = Change | TagChange | Occasion  # an Occasion: a birthday or anniversary reached (``segmenter.occasions``)
LEFT = "its ruleset is no longer in force"  # the condition of a change to no segment

def _reclassify(record: CustomerRecord, state: WindowState, profile: Profile, *, as_of: int,
                ruleset: RuleSet | None, policy: Policy, cause: tuple[str, str],
                overrides: tuple[Override, ...] | None = None, manual_tags: tuple[ManualTag, ...] | None = None,
                population: Ranks | None = None) -> tuple[CustomerRecord, list[AnyChange]]:
    profile = record.profile if profile is record.profile else dict(profile)
    overrides = overrides if overrides is not None else record.overrides
    manual_tags = manual_tags if manual_tags is not None else record.manual_tags
    if overrides:
        overrides = tuple(o for o in overrides if o.active(as_of))  # an expired one goes: the rules decide again
    if ruleset is None:
        return record._replace(state=state, profile=profile, seq=record.seq + 1, overrides=overrides,
                               manual_tags=manual_tags), []
    t = totals_at(state, as_of, policy)
    judged = ruleset.judge_totals(t.long, t.short, state.first_purchase, state.last_purchase, as_of,
                                  profile or NO_PROFILE, population, t.extra)
    n = len(ruleset.dimensions)
    current = judged if len(judged) == n else judged[:n]
    if population is not None and population.hysteresis and ruleset.population_dims and (
            record.ruleset == ruleset.key or ruleset.parts):  # the same rules (for several in force: per part)
        current = _held_in_band(current, record, ruleset, t, state=state, as_of=as_of, population=population,
                                profile=profile)
    segments = ruleset.pairs(current)
    held = {o.dimension: o for o in overrides
            if o.segment in ruleset.segment_names.get(o.dimension, ())} if overrides else {}  # stale ones: not applied
    if held:
        segments = tuple((name, held[name].segment if name in held else now) for name, now in segments)
    changes: list[AnyChange] = []
    values = None
    if segments is not record.segments and segments != record.segments:
        values = metric_view(state, as_of, policy, profile, population)  # the explanations show the values
        before = dict(record.segments)
        for dim, (name, now) in zip(ruleset.dimensions, segments, strict=True):
            if before.get(name) != now:
                pin = held.get(name)
                why = (Explanation(name, now, pin.condition(), {}, ()) if pin is not None
                       else explain_dimension(dim, values, policy))
                changes.append(Change(name, before.get(name), now, cause[0], cause[1], explanation=why))
        if record.ruleset != ruleset.key:  # a dimension can leave only with a change of the rules in force
            changes.extend(_left(record, ruleset, cause))
    tags = record.tags
    if ruleset.tags or manual_tags or tags:
        copied = ruleset.copied(profile, t.extra)
        given = ruleset.tags_of(judged[n:], copied) if ruleset.tags else []
        tags = tagset([*given, *(m.tag for m in manual_tags)])
        if tags != record.tags:
            values = values or metric_view(state, as_of, policy, profile, population)
            changes.extend(_tag_changes(record.tags, tags, given=given, manual_tags=manual_tags, ruleset=ruleset,
                                        profile=copied, values=values, policy=policy, cause=cause))
    due = due_day(ruleset, state, as_of, policy, track_amount=True,  # the projection keeps amount_12m
                  current=judged, profile=profile, population=population)
    due = _due(record, ruleset, profile, state.first_purchase, as_of=as_of, due=due, overrides=overrides,
               changes=changes)
    return (new_tuple(CustomerRecord, (state, profile, segments, ruleset.key, due, record.seq + 1, overrides, tags,
                                       manual_tags)), changes)  # every field


def _due(record: CustomerRecord, ruleset: RuleSet, profile: Profile, first_purchase: int | None, *, as_of: int,
         due: int | None, overrides: tuple[Override, ...], changes: list[AnyChange]) -> int | None:
    """The next due day: the rules' (``due``), at most the end of an override and the next occasion's wake day (the due
    index wakes the customer then: no scan). The occasions reached since the record's due day are appended to
    ``changes``."""
    wakes = [o.until for o in overrides if o.until is not None]
    if ruleset.occasions:
        birth = birth_of(profile)
        if record.due is not None and record.due <= as_of:  # woken on (or past) its due day: what it reached
            changes.extend(reached(ruleset.occasions, birth, first_purchase, record.due, as_of))
        wake = next_wake(ruleset.occasions, birth, first_purchase, as_of)
        if wake is not None:
            wakes.append(wake)
    if due is not None:
        wakes.append(due)
    return min(wakes) if wakes else None


def _left(record: CustomerRecord, ruleset: RuleSet, cause: tuple[str, str]) -> list[AnyChange]:
    """A change to no segment for each dimension of ``record`` whose ruleset left (retired, or a version without
    it)."""
    return [Change(name, was, None, cause[0], cause[1], explanation=Explanation(name, "", LEFT, {}, ()))
            for name, was in record.segments if name not in ruleset.segment_names]


def _held_in_band(current: tuple[str, ...], record: CustomerRecord, ruleset: RuleSet, t: Totals, *,
                  state: WindowState, as_of: int, population: Ranks, profile: Profile) -> tuple[str, ...]:
    """No flapping: a dimension that reads population metrics keeps its segment while the customer's ranks are
    within ``population.hysteresis`` points of putting it there (every rank moved up, or every rank down)."""
    before = dict(record.segments)
    kept = None if record.ruleset == ruleset.key else set(keys_of(record.ruleset))  # parts classified by before
    band = population.hysteresis
    shifted = [ruleset.judge_totals(t.long, t.short, state.first_purchase, state.last_purchase, as_of,
                                    profile or NO_PROFILE, population.shifted(delta), t.extra)
               for delta in (-band, band)]
    out = list(current)
    for i in ruleset.population_dims:
        if kept is not None and ruleset.dimension_keys[i] not in kept:
            continue  # its ruleset is new to this customer: classified afresh
        was = before.get(ruleset.dimensions[i].name)
        if was is not None and was != out[i] and any(s[i] == was for s in shifted):
            out[i] = was
    return tuple(out)


def _tag_changes(before: tuple[str, ...], after: tuple[str, ...], *, given: list[str],
                 manual_tags: tuple[ManualTag, ...], ruleset: RuleSet, profile: Profile, values: dict[str, Any],
                 policy: Policy, cause: tuple[str, str]) -> list[AnyChange]:
    """One change per tag added or removed, with why: the manual tag, or the rule's condition and its values."""
    manual = {m.tag: m for m in manual_tags}
    out: list[AnyChange] = []
    old, new = set(before), set(after)
    for name in sorted(old ^ new):
        added = name in new
        if name in manual and name not in given:
            why, shown = manual[name].condition(), {}
        elif (rule := ruleset.tag_rule(name, profile)) is not None:  # the rule behind it (or, removed, behind it then)
            read = rule.condition.metrics if rule.condition is not None else ()
            why = rule.reason(profile) if added else f"no longer: {rule.reason(profile)}"
            shown = {m: display(m, values[m], policy) for m in read}
        else:
            why, shown = ("removed by hand" if cause[0] == "manual" else "not a tag of the ruleset in force"), {}
        out.append(TagChange(name, added, cause[0], cause[1], why, metrics=shown))
    return out


def on_tag(record: CustomerRecord, mark: ManualTag | None, *, tag: str, event_id: str, now_day: int,
           ruleset: RuleSet | None, policy: Policy, population: Ranks | None = None
           ) -> tuple[CustomerRecord, list[AnyChange]]:
    """Add (``mark``) or remove (None) the manual tag ``tag``; cause ``manual``. A tag the rules give stays
    while its condition holds."""
    manual_tags = tuple(m for m in record.manual_tags if m.tag != tag) + ((mark,) if mark is not None else ())
    if manual_tags == record.manual_tags:
        return record, []
    return _reclassify(record, record.state, record.profile, as_of=now_day, ruleset=ruleset, policy=policy,
                       cause=("manual", event_id), manual_tags=manual_tags, population=population)


def on_override(record: CustomerRecord, pin: Override | None, *, dimension: str, event_id: str, now_day: int,
                ruleset: RuleSet | None, policy: Policy, population: Ranks | None = None
           ) -> tuple[CustomerRecord, list[AnyChange]]:
    """Set (``pin``) or clear (None) the manual override of ``dimension``; cause ``override``."""
    overrides = tuple(p for p in record.overrides if p.dimension != dimension) + ((pin,) if pin is not None else ())
    if overrides == record.overrides:
        return record, []
    return _reclassify(record, record.state, record.profile, as_of=now_day, ruleset=ruleset, policy=policy,
                       cause=("override", event_id), overrides=overrides, population=population)


def on_fact(record: CustomerRecord, fact: Fact, *, event_id: str, now_day: int, ruleset: RuleSet | None,
            policy: Policy, population: Ranks | None = None) -> tuple[CustomerRecord, list[AnyChange], Outcome]:
    state, outcome = apply(record.state, fact, now_day, policy)
    if state is record.state:  # a duplicate, or too old to change anything
        return record, [], outcome
    new, changes = _reclassify(record, state, record.profile, as_of=now_day, ruleset=ruleset, policy=policy,
                               cause=("event", event_id), population=population)
    return new, changes, outcome


def on_profile(record: CustomerRecord, profile: dict[str, str | None], *, key: str, now_day: int,
               ruleset: RuleSet | None, policy: Policy, population: Ranks | None = None
           ) -> tuple[CustomerRecord, list[AnyChange]]:
    if profile == record.profile:
        return record, []
    return _reclassify(record, record.state, profile, as_of=now_day, ruleset=ruleset, policy=policy,
                       cause=("event", key), population=population)


def on_time(record: CustomerRecord, now_day: int, ruleset: RuleSet | None, policy: Policy,
            population: Ranks | None = None) -> tuple[CustomerRecord, list[AnyChange]]:
    """Time passed ``record.due``: drop what left the windows and reclassify."""
    state = advance(record.state, now_day, policy)
    return _reclassify(record, state, record.profile, as_of=now_day, ruleset=ruleset, policy=policy,
                       cause=("time", str(now_day)), population=population)


def on_rules(record: CustomerRecord, now_day: int, ruleset: RuleSet, policy: Policy,
             population: Ranks | None = None) -> tuple[CustomerRecord, list[AnyChange]]:
    """A new ruleset version: reclassify once; dimensions it no longer has are left out."""
    if record.ruleset == ruleset.key:
        return record, []
    return _reclassify(record, record.state, record.profile, as_of=now_day, ruleset=ruleset, policy=policy,
                       cause=("rules", ruleset.key), population=population)


def on_population(record: CustomerRecord, now_day: int, ruleset: RuleSet, policy: Policy, population: Ranks
                  ) -> tuple[CustomerRecord, list[AnyChange]]:
    """The population's ranks moved (``population.key`` names the new ones): reclassify; cause ``population``."""
    return _reclassify(record, record.state, record.profile, as_of=now_day, ruleset=ruleset, policy=policy,
                       cause=("population", population.key), population=population)
