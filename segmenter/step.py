"""The stateful step of the worker, as pure functions over a per-customer record.

``on_fact``, ``on_time`` and ``on_rules`` take a record and return the new record and the segment
changes (one per dimension that moved), each with the explanation of its new segment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

import orjson

from segmenter import codec
from segmenter.classify import Explanation, due_day, explain_dimension
from segmenter.errors import InvalidStateError
from segmenter.metrics import NO_PROFILE, Profile, display, metric_view
from segmenter.occasions import Occasion, birth_of, next_wake, reached
from segmenter.ranking import Ranks
from segmenter.rules.compiler import RuleSet
from segmenter.rules.rulebook import keys_of
from segmenter.state import EMPTY, Fact, Outcome, Policy, Totals, WindowState, advance, apply, totals_at


class Override(NamedTuple):
    """A manual override (手动调整分类): ``dimension`` held at ``segment`` by hand, until the start of business day
    ``until`` (None: until cleared). An override whose segment the ruleset in force lacks is kept but not applied
    (stale)."""

    dimension: str
    segment: str
    until: int | None
    by: str
    reason: str
    event_id: str

    def active(self, day: int) -> bool:
        return self.until is None or day < self.until

    def condition(self) -> str:
        until = "" if self.until is None else f" until {date.fromordinal(self.until).isoformat()}"
        return f"override by {self.by}{until}: {self.reason}"


class ManualTag(NamedTuple):
    """A manual tag (标签): ``tag`` given by hand, by whom and why."""

    tag: str
    by: str
    reason: str
    event_id: str

    def condition(self) -> str:
        return f"tagged by {self.by}: {self.reason}"


class CustomerRecord(NamedTuple):
    """What the worker's table keeps per customer."""

    state: WindowState = EMPTY
    profile: dict[str, str | None] = {}  # noqa: RUF012 - NamedTuple default, never mutated
    segments: tuple[tuple[str, str], ...] = ()  # (dimension, segment)
    ruleset: str = ""  # "id@version" the segments were computed with
    due: int | None = None  # next day time alone may move this customer
    seq: int = 0  # bumped on every stored change: newer projections win
    overrides: tuple[Override, ...] = ()  # manual overrides, one per dimension at most
    tags: tuple[str, ...] = ()  # every tag the customer has (the rules' and the manual ones), sorted
    manual_tags: tuple[ManualTag, ...] = ()  # the manual tags


@dataclass(frozen=True, slots=True)
class TagChange:
    """A tag added (``added``) or removed, and why."""

    tag: str
    added: bool
    cause: str  # event | time | rules | manual
    cause_key: str
    condition: str
    metrics: Mapping[str, object]

    def change_id(self, customer_id: str, ruleset_key: str) -> str:
        raw = "\x1f".join((customer_id, "#tag", self.tag, "+" if self.added else "-", ruleset_key, self.cause,
                           self.cause_key))
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Change:
    dimension: str
    before: str | None
    after: str | None  # None: the dimension left with its ruleset (``LEFT``)
    cause: str  # event | time | rules
    cause_key: str  # event id, due day or ruleset version: makes the change id deterministic
    explanation: Explanation

    def change_id(self, customer_id: str, ruleset_key: str) -> str:
        raw = "\x1f".join((customer_id, self.dimension, self.before or "", self.after or "", ruleset_key,
                           self.cause, self.cause_key))
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


AnyChange = Change | TagChange | Occasion  # an Occasion: a birthday or anniversary reached (``segmenter.occasions``)
LEFT = "its ruleset is no longer in force"  # the condition of a change to no segment

RECORD_FORMAT = 2  # 1 (before 2026-11): 4-byte state length, state, JSON tail; still read
OVERRIDES_TAG = 0x50  # starts the optional tail of manual overrides
TAGS_TAG = 0x54  # starts the optional tail of tags (after the overrides' tail, when both are there)


def dumps(record: CustomerRecord, state: bytes | None = None) -> bytes:
    """``0x02``, the window state (length-prefixed), then ruleset, segments, due, seq and profile as
    varints and length-prefixed text (about 25 bytes for a typical customer). ``state``: the state
    already encoded (by a ``codec.StateEncoder``)."""
    if state is None:
        state = codec.dumps(record.state)
    out = bytearray((RECORD_FORMAT,))
    codec.put_varint(out, len(state))
    out += state
    out += _classified(record.ruleset, record.segments)
    codec.put_varint(out, 0 if record.due is None else record.due + 1)
    codec.put_varint(out, record.seq)
    codec.put_text(out, orjson.dumps(record.profile).decode() if record.profile else None)
    if record.overrides:  # an optional tail, tagged: records without overrides end before it
        out.append(OVERRIDES_TAG)
        codec.put_text(out, orjson.dumps([list(o) for o in record.overrides]).decode())
    if record.tags or record.manual_tags:
        out.append(TAGS_TAG)
        codec.put_text(out, orjson.dumps([record.tags, [list(m) for m in record.manual_tags]]).decode())
    return bytes(out)


_CLASSIFIED: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}


def _classified(ruleset: str, segments: tuple[tuple[str, str], ...]) -> bytes:
    """The ruleset and segments part of a record (few distinct values: each encoded once)."""
    done = _CLASSIFIED.get((ruleset, segments))
    if done is None:
        out = bytearray()
        codec.put_text(out, ruleset)
        codec.put_varint(out, len(segments))
        for dimension, segment in segments:
            codec.put_text(out, dimension)
            codec.put_text(out, segment)
        if len(_CLASSIFIED) >= 4096:
            _CLASSIFIED.clear()
        done = _CLASSIFIED[(ruleset, segments)] = bytes(out)
    return done


def loads(data: bytes) -> CustomerRecord:
    if data[:1] != bytes((RECORD_FORMAT,)):
        return _loads_format_1(data)
    return _loads(data, decode=True)[1]


def loads_shallow(data: bytes) -> tuple[bytes, CustomerRecord]:
    """The record's encoded window state, and the record with every other field (its ``state`` left EMPTY): for
    readers that need only window sums (``codec.sums``), not the buckets."""
    if data[:1] != bytes((RECORD_FORMAT,)):
        record = _loads_format_1(data)
        return codec.dumps(record.state), record._replace(state=EMPTY)
    return _loads(data, decode=False)


def _loads(data: bytes, *, decode: bool) -> tuple[bytes, CustomerRecord]:
    reader = codec.Reader(data)
    reader.pos = 1
    try:
        n = reader.varint()
        raw = data[reader.pos : reader.pos + n]
        state = codec.loads(raw) if decode else EMPTY
        reader.pos += n
        ruleset = reader.text() or ""
        segments = tuple((reader.text() or "", reader.text() or "") for _ in range(reader.varint()))
        due_raw, seq = reader.varint(), reader.varint()
        profile_text = reader.text()
        profile = orjson.loads(profile_text) if profile_text else {}
        overrides: tuple[Override, ...] = ()
        tags: tuple[str, ...] = ()
        manual_tags: tuple[ManualTag, ...] = ()
        if reader.pos < len(data) and data[reader.pos] == OVERRIDES_TAG:
            reader.pos += 1
            overrides = tuple(Override(*p) for p in orjson.loads(reader.text() or "[]"))
        if reader.pos < len(data) and data[reader.pos] == TAGS_TAG:
            reader.pos += 1
            tag_list, mark_list = orjson.loads(reader.text() or "[[], []]")
            tags, manual_tags = tagset(tag_list), tuple(ManualTag(*m) for m in mark_list)
    except (IndexError, ValueError, TypeError, UnicodeDecodeError, orjson.JSONDecodeError) as exc:
        raise InvalidStateError(f"customer record: {exc}") from exc
    if reader.pos != len(data):
        raise InvalidStateError(f"customer record: {len(data) - reader.pos} trailing bytes")
    return raw, CustomerRecord(state, profile, segments, ruleset, due_raw - 1 if due_raw else None, seq, overrides,
                               tags, manual_tags)


_TAGSETS: dict[tuple[str, ...], tuple[str, ...]] = {}


def tagset(tags: Iterable[str]) -> tuple[str, ...]:
    """``tags`` sorted, as one shared tuple per distinct set (most customers share a few)."""
    key = tuple(sorted(set(tags)))
    found = _TAGSETS.get(key)
    if found is None:
        if len(_TAGSETS) >= 4096:
            _TAGSETS.clear()
        found = _TAGSETS[key] = key
    return found


def _loads_format_1(data: bytes) -> CustomerRecord:
    try:
        n = int.from_bytes(data[:4], "big")
        state = codec.loads(data[4 : 4 + n])
        profile, segments, ruleset, due, seq = orjson.loads(data[4 + n :])
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidStateError(f"customer record: {exc}") from exc
    return CustomerRecord(state, profile or {}, tuple((d, s) for d, s in segments), ruleset, due, seq)


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
                changes.append(Change(name, before.get(name), now, cause[0], cause[1], why))
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
    return (CustomerRecord(state, profile, segments, ruleset.key, due, record.seq + 1, overrides, tags, manual_tags),
            changes)


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
    return [Change(name, was, None, cause[0], cause[1], Explanation(name, "", LEFT, {}, ()))
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
        out.append(TagChange(name, added, cause[0], cause[1], why, shown))
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
