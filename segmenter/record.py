"""A customer's record as the worker's table keeps it (``CustomerRecord``, with its manual ``Override`` and
``ManualTag`` entries), and its stored form: ``dumps`` / ``loads`` (format 2; format 1 still read), ``loads_shallow``
for readers that need only window sums. ``segmenter.step`` computes new records from old ones."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

import orjson

from segmenter import codec
from segmenter.errors import InvalidStateError
from segmenter.state import EMPTY, WindowState, new_tuple


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


RECORD_FORMAT = 2  # 1 (before 2026-11): 4-byte state length, state, JSON tail; still read
OVERRIDES_TAG = 0x50  # starts the optional tail of manual overrides
TAGS_TAG = 0x54  # starts the optional tail of tags (after the overrides' tail, when both are there)


def dumps(record: CustomerRecord, state: bytes | None = None) -> bytes:
    """``0x02``, the window state (length-prefixed), then ruleset, segments, due, seq and profile as
    varints and length-prefixed text (about 25 bytes for a typical customer). ``state``: the state
    already encoded (by an ``encoder.StateEncoder``)."""
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


def loads_encoded(data: bytes) -> tuple[bytes, CustomerRecord]:
    """The record, and its window state's encoding as stored (``encoder.StateEncoder.read``: written again unchanged,
    it is not encoded again)."""
    if data[:1] != bytes((RECORD_FORMAT,)):
        return data[4 : 4 + int.from_bytes(data[:4], "big")], _loads_format_1(data)
    return _loads(data, decode=True)


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
    return raw, new_tuple(CustomerRecord, (state, profile, segments, ruleset, due_raw - 1 if due_raw else None, seq,
                                           overrides, tags, manual_tags))  # every field


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
