"""The customers a worker holds (``Customers``), the part of the engine every record goes through; and their
erasure (``segmenter erase``): a customer forgotten in its partition, and remembered only as a keyed hash of its id
with the erasure's time, so that older events replayed do not bring it back."""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from segmenter import step
from segmenter.policy import Policy
from segmenter.privacy import erased_key
from segmenter.ranking import Ranks
from segmenter.rules import RuleSet
from segmenter.state import Fact, amount_12m_minor, totals_at
from streams.kafka import faust_compat
from streams.readmodel.movement import NEW
from streams.settings import Settings
from streams.stored import unpack_encoded
from streams.text import clip
from streams.worker.documents import change_json, erasure_json, story_entry
from streams.worker.flush import Flusher
from streams.worker.metrics import WorkerMetrics
from streams.worker.partition import Move, Partition
from streams.worker.population import Values

log = logging.getLogger("segmenter.worker")


def ranked(part: Partition, record: step.CustomerRecord, policy: Policy) -> Values | None:
    """The customer's ranked values (amount_12m, purchases_12m, last purchase day) as of the partition's day; None
    outside the population."""
    last = record.state.last_purchase
    if part.day is None or last is None:
        return None
    long = totals_at(record.state, part.day, policy).long
    return (long[1], long[0], last) if long[0] else None


def _move(change: step.AnyChange, day: int | None, minor: int | None) -> Move | None:
    """A segment move counted in the day summary: the customer's own (not a tag, not a recovery's setting back)."""
    if not isinstance(change, step.Change) or change.cause == "recovery" or day is None:
        return None
    if change.before == change.after or change.after is None:  # a dimension leaving with its ruleset: no move
        return None
    return (day, change.dimension, change.before or NEW, change.after, minor or 0)


Change = Callable[[step.CustomerRecord, int, RuleSet | None], tuple[step.CustomerRecord, list[step.AnyChange]]]


class Customers:
    """The customers of the partitions a worker holds, and the per-record path through them (compiled with the core:
    ``streams.compiled``): an event, a profile, an override or a manual tag applied (``fact``, ``profile``,
    ``override``, ``tag``), the stream clock moved on and the customers due woken (``advance``); a record read back
    from the table's store when it is not held in memory (``get``); a changed record kept as the most recently
    changed, marked for the next flush, its ranked values into the partition's index, its due day queued, its changes
    turned into segment-change documents and story entries (``put``); a customer forgotten (``erase``). ``ranks``:
    the population's ranks in force (``streams.worker.ranking`` adopts them)."""

    def __init__(self, settings: Settings, policy: Policy, table: Any, *, stats: Counter[str], flusher: Flusher,
                 metrics: WorkerMetrics | None, erase_secret: bytes) -> None:
        self.settings, self.policy, self.table, self.stats = settings, policy, table, stats
        self.flusher, self.metrics, self.erase_secret = flusher, metrics, erase_secret
        self.ranks: Ranks | None = None

    # -- per record (no awaits) ------------------------------------------------------------------------
    def fact(self, part: Partition, customer: str, event_id: str, occurred: datetime, fact: Fact) -> None:
        if part.stream_time is None or occurred > part.stream_time:
            self.advance(part, occurred)
        if part.erased and occurred.timestamp() <= part.erased.get(erased_key(customer, self.erase_secret), -1):
            self.stats["erased_ignored"] += 1  # dated on or before the customer's erasure: it stays erased
            return
        record = self.get(part, customer)
        new, changes, outcome = step.on_fact(record, fact, event_id=event_id, now_day=part.day or fact.day,
                                             ruleset=part.ruleset, policy=self.policy, population=self.ranks)
        self.stats[outcome.value] += 1
        if new is not record:
            self.put(part, customer, record, new, changes)

    def profile(self, part: Partition, customer: str, attributes: dict[str, str | None], key: str) -> None:
        self._untimed(part, customer, lambda record, day, ruleset: step.on_profile(
            record, attributes, key=key, now_day=day, ruleset=ruleset, policy=self.policy, population=self.ranks))

    def override(self, part: Partition, customer: str, dimension: str, pin: step.Override | None,
                 event_id: str) -> None:
        self._untimed(part, customer, lambda record, day, ruleset: step.on_override(
            record, pin, dimension=dimension, event_id=event_id, now_day=day, ruleset=ruleset, policy=self.policy,
            population=self.ranks))

    def tag(self, part: Partition, customer: str, tag: str, mark: step.ManualTag | None, event_id: str) -> None:
        self._untimed(part, customer, lambda record, day, ruleset: step.on_tag(
            record, mark, tag=tag, event_id=event_id, now_day=day, ruleset=ruleset, policy=self.policy,
            population=self.ranks))

    def _untimed(self, part: Partition, customer: str, change: Change) -> None:
        """A record with no event time (a profile, an override, a manual tag): applied at the partition's day, and
        classified only once the partition has one."""
        if part.erased and erased_key(customer, self.erase_secret) in part.erased and not self.known(part, customer):
            self.stats["erased_ignored"] += 1  # a profile, override or tag of an erased customer: not brought back
            return
        record = self.get(part, customer)
        new, changes = change(record, part.day or 0, part.ruleset if part.day is not None else None)
        if new is not record:
            self.put(part, customer, record, new, changes)

    def advance(self, part: Partition, when: datetime) -> None:
        """The partition's stream clock moved to ``when``: on a new business day, the customers due wake."""
        if part.stream_time is not None and when <= part.stream_time:
            return
        part.stream_time = when
        if part.next_day_at is not None and when < part.next_day_at:
            return  # the same business day (most records): no calendar arithmetic
        calendar = self.policy.calendar
        day = calendar.day(when)
        part.next_day_at = calendar.start_of(day + 1)
        if day == part.day:
            return
        part.day, part.meta_dirty, part.clock_dirty = day, True, True
        dues = part.dues
        while part.heap and part.heap[0][0] <= day:  # part.heap: put may rebuild it while we go
            due, customer = heapq.heappop(part.heap)
            if dues.get(customer) != due:
                continue  # superseded by a later event
            record = self.get(part, customer)
            new, changes = step.on_time(record, day, part.ruleset, self.policy, self.ranks)
            self.stats["time_wakeups"] += 1
            self.put(part, customer, None, new, changes)  # its heap entry was just popped

    def get(self, part: Partition, customer: str) -> step.CustomerRecord:
        """The customer's record: held, read back from the store, or a new one."""
        record = part.records.get(customer)
        if record is None:
            value = (None if part.deleted and customer in part.deleted  # erased; its tombstone not written yet
                     else faust_compat.stored_get(self.table, part.number, customer.encode()))
            if value is None:
                record = step.CustomerRecord()
            else:
                record = self._read(customer, value)
                self.stats["store_reads"] += 1  # read back (evicted, or stored before a restart)
            part.records[customer] = record
        return record

    def read_ahead(self, part: Partition, customers: Sequence[str]) -> None:
        """Hold the stored records of ``customers`` (ascending ids) that are not held, read in one pass of the store
        (``faust_compat.stored_run``) instead of a point read each; ``get`` then finds them held. A rules change
        reads the customers it goes through so."""
        records, deleted = part.records, part.deleted
        keys = [c.encode() for c in customers if c not in records and not (deleted and c in deleted)]
        if not keys:
            return
        found = faust_compat.stored_run(self.table, part.number, keys)
        for key, value in found.items():
            customer = key.decode()
            records[customer] = self._read(customer, value)
        self.stats["store_reads"] += len(found)

    def _read(self, customer: str, value: bytes) -> step.CustomerRecord:
        """A stored record decoded; the flushes' encoder keeps its state's bytes, reused if it is written again
        unchanged (a rules change, a customer woken by time)."""
        encoded, record = unpack_encoded(value)
        self.flusher.encoder.read(customer, record.state, encoded)
        return record

    def put(self, part: Partition, customer: str, old: step.CustomerRecord | None, record: step.CustomerRecord,
            changes: list[step.AnyChange]) -> None:
        """``old``: the record this replaces, whose heap entry (if any) is still queued."""
        records = part.records
        records.pop(customer, None)  # to the end: the least recently changed customers are evicted first
        records[customer] = record
        if part.index is not None:
            part.index.update(customer, ranked(part, record, self.policy))
        part.dirty.add(customer)
        due = record.due
        if due is None:
            part.dues.pop(customer, None)
        elif old is None or old.due != due:
            part.dues[customer] = due
            heap = part.heap
            heapq.heappush(heap, (due, customer))  # an unchanged due is already queued
            if len(heap) > 2 * len(part.dues) + 1024:  # superseded entries: rebuild from the current dues
                part.heap = [(d, c) for c, d in part.dues.items()]
                heapq.heapify(part.heap)
        if changes:
            if part.replaying is not None:  # the topic's last word on these is now the state's
                part.replaying.superseded(customer, changes)
            ruleset = part.ruleset
            assert ruleset is not None
            stream_time = part.stream_time_text()
            key = customer.encode()
            day = part.day
            minor = amount_12m_minor(record.state, day, self.policy) if day is not None else None
            amount = str(self.policy.from_minor(minor)) if minor is not None else None
            ids = [c.change_id(customer, record.ruleset) for c in changes]  # once: the document and the story
            part.changes += [(key, change_json(customer, record, c, ruleset, stream_time, change_id=i,
                                               amount_12m=amount)) for c, i in zip(changes, ids, strict=True)]
            self.stats["changes"] += len(changes)
            if self.metrics is not None:
                for c in changes:
                    self.metrics.changes[("tag", c.tag, c.cause) if isinstance(c, step.TagChange)
                                         else ("segment", c.dimension, c.cause) if isinstance(c, step.Change)
                                         else ("occasion", c.kind, c.cause)] += 1
            # every change for the story (the flush keeps the last story_changes) and each move for the day summary
            part.history.setdefault(customer, []).extend(
                (i, story_entry(c, stream_time), _move(c, day, minor)) for c, i in zip(changes, ids, strict=True))

    def known(self, part: Partition, customer: str) -> bool:
        """Whether the partition has the customer (held, or in the store and not erased)."""
        if customer in part.records:
            return True
        return customer not in part.deleted and faust_compat.stored_get(self.table, part.number,
                                                                        customer.encode()) is not None

    def erase(self, part: Partition, customer: str, at: datetime, reason: str, by: str) -> None:
        """Forget the customer: its record (a tombstone in the changelog at the next flush), its due entry, its place
        in Redis and the population index; remember a hash of its id with the erasure's time, so older events do not
        bring it back; publish the erasure for downstream consumers."""
        when = int(at.timestamp())
        key = erased_key(customer, self.erase_secret)
        known = self.known(part, customer)
        segments = dict(self.get(part, customer).segments) if known else {}
        part.erased[key] = max(when, part.erased.get(key, when))
        part.meta_dirty = True
        part.records.pop(customer, None)
        self.flusher.forget(customer)  # the encoder's memo of its older days
        part.dues.pop(customer, None)  # its heap entry, if any, is skipped when popped
        part.history.pop(customer, None)
        if part.replaying is not None:  # the erasure is the topic's last word on the customer
            part.replaying.published.pop(customer, None)
        part.dirty.discard(customer)
        part.deleted.add(customer)
        if part.index is not None:
            part.index.update(customer, None)
        stream_time = part.stream_time_text()
        part.changes.append((customer.encode(), erasure_json(customer, segments, reason=reason, by=by, at=at,
                                                              stream_time=stream_time)))
        self.stats["erased"] += 1
        log.info("partition %d: a customer was erased (%s, by %s); %s", part.number, clip(reason), clip(by),
                    "its record goes at the next flush" if known else "it held no record")
