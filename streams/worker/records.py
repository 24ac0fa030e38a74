"""The customers a worker holds in memory, the part of ``Engine`` every record goes through: a customer read back
from the store when it is not held (``_get``); a changed record kept as the most recently changed, marked for the
next flush, its due day queued, and its changes turned into segment-change documents and story entries (``_put``)."""

from __future__ import annotations

import heapq
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from segmenter import step
from segmenter.state import Policy, amount_12m_minor
from streams.kafka import faust_compat
from streams.readmodel.movement import NEW
from streams.settings import Settings
from streams.stored import unpack
from streams.worker.documents import change_json, story_entry
from streams.worker.flush import Flusher
from streams.worker.metrics import WorkerMetrics
from streams.worker.partition import Move, Partition
from streams.worker.population import Values


def _move(change: step.AnyChange, day: int | None, minor: int | None) -> Move | None:
    """A segment move counted in the day summary: the customer's own (not a tag, not a recovery's setting back)."""
    if not isinstance(change, step.Change) or change.cause == "recovery" or day is None:
        return None
    if change.before == change.after or change.after is None:  # a dimension leaving with its ruleset: no move
        return None
    return (day, change.dimension, change.before or NEW, change.after, minor or 0)


class Records:
    """These attributes and ``_ranked`` (``Ranking``'s) are the engine's."""

    settings: Settings
    policy: Policy
    stats: Counter[str]
    customers: Any
    flusher: Flusher
    erase_secret: bytes
    metrics: WorkerMetrics | None

    def _ranked(self, part: Partition, record: step.CustomerRecord) -> Values | None:
        raise NotImplementedError  # the engine's (streams.worker.ranking)

    def _get(self, part: Partition, customer: str) -> step.CustomerRecord:
        record = part.records.get(customer)
        if record is None:
            value = (None if part.deleted and customer in part.deleted  # erased; its tombstone not written yet
                     else faust_compat.stored_get(self.customers, part.number, customer.encode()))
            if value is None:
                record = step.CustomerRecord()
            else:
                record = unpack(value)
                self.stats["store_reads"] += 1  # read back (evicted, or stored before a restart)
            part.records[customer] = record
        return record

    def _put(self, part: Partition, customer: str, old: step.CustomerRecord | None, record: step.CustomerRecord,
             changes: list[step.AnyChange]) -> None:
        """``old``: the record this replaces, whose heap entry (if any) is still queued."""
        records = part.records
        records.pop(customer, None)  # to the end: the least recently changed customers are evicted first
        records[customer] = record
        if part.index is not None:
            part.index.update(customer, self._ranked(part, record))
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
            stream_time = (part.stream_time or datetime.now(UTC)).isoformat()
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
