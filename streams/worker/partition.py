"""One input partition as the engine holds it: stream time, ruleset, due heap, decoded customers."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from segmenter import step
from segmenter.policy import Policy
from segmenter.rules import RuleSet, load_ruleset
from segmenter.rules.rulebook import combine, parts_of
from streams.kafka.fetched import TP, Record
from streams.worker.population import PartitionIndex

Move = tuple[int, str, str, str, int]  # a segment move: business day, dimension, from, to, amount_12m (minor)
History = list[tuple[str, str, Move | None]]  # a customer's changes since the last flush: id, story entry, move


@dataclass
class Published:
    """The last word the topic holds on one customer: segment per dimension, and tags added (True) or removed."""

    segments: dict[str, str] = field(default_factory=dict)
    tags: dict[str, bool] = field(default_factory=dict)


@dataclass
class Replaying:
    """A partition opened past changes it had not saved, until its replay has reached every input's end as it stood
    at the opening (all that the stopped worker can have processed): what the topic last said of each customer there,
    less what the replay has said since."""

    published: dict[str, Published]
    targets: dict[TP, int]  # input topic-partition -> its end at the opening, while not reached
    values: int  # changes read past the saved state
    unreadable: int
    began: float = field(default_factory=time.monotonic)

    def superseded(self, customer: str, changes: Sequence[step.AnyChange]) -> None:
        """The replay published ``changes`` of ``customer``: the topic's last word on those is the state's."""
        said = self.published.get(customer)
        if said is not None:
            for change in changes:
                if isinstance(change, step.TagChange):
                    said.tags.pop(change.tag, None)
                elif isinstance(change, step.Change):
                    said.segments.pop(change.dimension, None)

    def reached(self, tp: TP, position: int) -> bool:
        """The replay is at ``position`` of ``tp``; True once every input's end at the opening is reached."""
        target = self.targets.get(tp)
        if target is not None and position >= target:
            del self.targets[tp]
        return not self.targets


@dataclass
class Reevaluation:
    """The customers a partition has still to re-evaluate under the ruleset it adopted (``what``)."""

    left: list[str]
    what: str
    total: int
    started: float = field(default_factory=time.monotonic)


@dataclass
class Partition:
    number: int
    epoch: int = 0  # bumped (durably) every time this partition is opened: orders Redis writes
    stream_time: datetime | None = None
    day: int | None = None
    next_day_at: datetime | None = None  # the first instant after ``day``: earlier stream times keep the day
    ruleset: RuleSet | None = None
    heap: list[tuple[int, str]] = field(default_factory=list)
    dues: dict[str, int] = field(default_factory=dict)  # customer -> its current due day (the heap's live entries)
    records: dict[str, step.CustomerRecord] = field(default_factory=dict)  # decoded, the truth
    dirty: set[str] = field(default_factory=set)  # changed since the last snapshot
    meta_dirty: bool = False
    clock_dirty: bool = False
    offsets: dict[TP, int] = field(default_factory=dict)  # input tp -> next offset to commit
    changes: list[tuple[bytes, bytes]] = field(default_factory=list)  # not yet handed to the producer
    history: dict[str, History] = field(default_factory=dict)  # since the last snapshot, per customer
    held: list[tuple[TP, Sequence[Record]]] = field(default_factory=list)  # waiting for a ruleset
    unruled: bool = False  # gave up waiting for a ruleset: records are folded in unclassified
    index: PartitionIndex | None = None  # population members by ranked value, when the rules read ranks
    erased: dict[str, int] = field(default_factory=dict)  # hash of an erased customer's id -> erasure time (epoch s)
    deleted: set[str] = field(default_factory=set)  # customers erased since the last snapshot
    # The segment-change topic's offset (this partition's) below which every change belongs to the saved state;
    # those from it on were published by a worker that stopped before saving (None: a meta from before it was kept).
    changes_end: int | None = 0
    replaying: Replaying | None = None  # opened past changes it had not saved, until its replay has caught up
    # A ruleset adopted, its customers not all re-evaluated yet: those left (popped from the end); meanwhile the
    # control topic's offset is not committed, so the group shows lag and a restart re-reads the rules record.
    reevaluating: Reevaluation | None = None
    control_next: tuple[TP, int] | None = None  # the control topic's next offset, committed once re-evaluated
    # ``stream_time`` as text, with the datetime it was made of: every change document and story entry carries it
    _time_text: tuple[datetime | None, str] = field(default=(None, ""), repr=False)

    @classmethod
    def from_meta(cls, number: int, stored: bytes | None, policy: Policy) -> Partition:
        """A partition as its ``partitions`` table entry left it (a fresh one when there is none)."""
        part = cls(number)
        if stored is not None:
            doc = orjson.loads(stored)
            part.epoch = doc.get("epoch", 0)
            if doc.get("stream_time"):
                part.stream_time = datetime.fromisoformat(doc["stream_time"])
                part.day = policy.calendar.day(part.stream_time)
            texts = doc.get("rulesets") or ([doc["ruleset"]] if doc.get("ruleset") else [])
            part.ruleset = combine(load_ruleset(text, "stored ruleset", policy.money_scale) for text in texts)
            part.erased = dict(doc.get("erased") or {})
            part.changes_end = doc.get("changes_end")
        return part

    def stream_time_text(self) -> str:
        """``stream_time`` in ISO 8601 (the wall clock's time while the partition has none), made once per stream
        time."""
        when = self.stream_time
        if when is None:
            return datetime.now(UTC).isoformat()
        made_of, text = self._time_text
        if made_of is not when:
            text = when.isoformat()
            self._time_text = (when, text)
        return text

    def meta_doc(self) -> dict[str, Any]:
        """This partition's ``partitions`` table entry, as a document."""
        return {
            "partition": self.number,
            "epoch": self.epoch,
            "stream_time": self.stream_time.isoformat() if self.stream_time else None,
            "rulesets": [ruleset.source for ruleset in parts_of(self.ruleset)],  # in force (was "ruleset": one)
            **({"erased": dict(self.erased)} if self.erased else {}),
            "changes_end": self.changes_end,
        }

    def meta_value(self) -> bytes:
        """This partition's ``partitions`` table entry."""
        return orjson.dumps(self.meta_doc())
