"""What the worker does with each record: decode, call the core, store, emit, project.

Per partition it keeps the stream time and a heap of (due day, customer) so that time-driven
changes wake exactly the customers that are due. Both are rebuilt from the tables after a
rebalance; the stream time and active ruleset are also stored in the ``partitions`` table.
"""

from __future__ import annotations

import base64
import heapq
import logging
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import faust
import orjson
from pydantic import ValidationError

from schemas import first_error
from schemas.events import INTERACTION_ADAPTER, PROFILE_ADAPTER, TRANSACTION_ADAPTER
from schemas.outputs import DeadLetter, SegmentChange
from segmenter import step
from segmenter.errors import SegmenterError
from segmenter.facts import fact_of_interaction, fact_of_transaction, profile_attributes
from segmenter.metrics import WINDOW_METRICS, compute, display
from segmenter.rules import RuleSet, load_ruleset
from segmenter.state import Fact
from streams.names import RAW, Names
from streams.projection import Projection
from streams.settings import Settings

log = logging.getLogger("segmenter.worker")
_HEADER = struct.Struct(">HI")  # partition, due day (0: none)


def pack(partition: int, record: step.CustomerRecord) -> bytes:
    return _HEADER.pack(partition, record.due or 0) + step.dumps(record)


def unpack(value: bytes) -> step.CustomerRecord:
    return step.loads(value[_HEADER.size :])


@dataclass
class PartitionState:
    partition: int
    stream_time: datetime | None = None
    day: int | None = None
    ruleset: RuleSet | None = None
    heap: list[tuple[int, str]] = field(default_factory=list)
    customers: set[str] = field(default_factory=set)


class Processor:
    def __init__(self, app: faust.App, settings: Settings, names: Names, tables: dict[str, Any]) -> None:
        self.app, self.settings, self.names = app, settings, names
        self.policy = settings.policy()
        self.customers, self.meta = tables[names.customers_table], tables[names.partitions_table]
        self.changes = app.topic(names.segment_changes, partitions=settings.partitions, **RAW)
        self.dead = app.topic(names.dead_letters, partitions=1, **RAW)
        self.control = app.topic(names.control, partitions=settings.partitions, **RAW)
        self.projection = Projection(settings.redis_url, names.redis)
        self.parts: dict[int, PartitionState] = {}
        self.loaded = False
        self.stats: Counter[str] = Counter()

    def forget(self) -> None:
        self.parts.clear()
        self.loaded = False

    async def close(self) -> None:
        await self.projection.close()

    # -- loading after a rebalance -------------------------------------------------------------
    def _load(self) -> None:
        actives = {tp.partition for tp in self.app.assignor.assigned_actives()}
        self.parts = {p: PartitionState(p) for p in actives}
        for _, value in self.meta.items():
            doc = orjson.loads(value)
            ps = self.parts.get(doc["partition"])
            if ps is not None:
                if doc.get("stream_time"):
                    ps.stream_time = datetime.fromisoformat(doc["stream_time"])
                    ps.day = self.policy.calendar.day(ps.stream_time)
                if doc.get("ruleset"):
                    ps.ruleset = load_ruleset(doc["ruleset"], "stored ruleset", self.policy.money_scale)
        for key, value in self.customers.items():
            partition, due = _HEADER.unpack_from(value)
            ps = self.parts.get(partition)
            if ps is not None:
                ps.customers.add(key.decode())
                if due:
                    ps.heap.append((due, key.decode()))
        for ps in self.parts.values():
            heapq.heapify(ps.heap)
        self.loaded = True
        log.warning("loaded %d partitions, %d customers", len(self.parts),
                    sum(len(p.customers) for p in self.parts.values()))

    def _save_meta(self, ps: PartitionState) -> None:
        self.meta[f"p{ps.partition}".encode()] = orjson.dumps({
            "partition": ps.partition,
            "stream_time": ps.stream_time.isoformat() if ps.stream_time else None,
            "ruleset": ps.ruleset.source if ps.ruleset else None,
        })

    # -- dispatch: decode at the edge (bad input -> dead letters), then process ------------------
    async def handle(self, event: faust.types.EventT) -> None:
        if not self.loaded:
            self._load()
        msg = event.message
        ps = self.parts.setdefault(msg.partition, PartitionState(msg.partition))
        try:
            work = self._decode(ps, event)
        except (ValidationError, SegmenterError, ValueError, KeyError, TypeError) as exc:
            await self._dead_letter(event, exc)
            return
        await work()  # our own failures here are bugs: they crash the agent, nothing is dead-lettered

    def _decode(self, ps: PartitionState, event: faust.types.EventT) -> Callable[[], Awaitable[None]]:
        topic, doc = event.message.topic, orjson.loads(event.value)
        if topic == self.names.control:
            if doc["type"] == "tick":
                return partial(self._advance, ps, datetime.fromisoformat(doc["to"]))
            if doc["type"] == "rules":
                ruleset = load_ruleset(doc["yaml"], doc.get("source", "rules"), self.policy.money_scale)
                return partial(self._adopt, ps, ruleset)
            raise ValueError(f"unknown control record type {doc['type']!r}")
        if topic == self.names.profiles:
            profile = PROFILE_ADAPTER.validate_python(doc)
            self._check_key(event, profile.customer_id)
            key = profile.event_id or f"profile@{event.message.offset}"
            return partial(self._on_profile, ps, profile.customer_id, profile_attributes(profile), key)
        if topic == self.names.transactions:
            tx = TRANSACTION_ADAPTER.validate_python(doc)
            customer, event_id, occurred, fact = tx.customer_id, tx.event_id, tx.occurred_at, \
                fact_of_transaction(tx, self.policy)
        else:
            ix = INTERACTION_ADAPTER.validate_python(doc)
            customer, event_id, occurred, fact = ix.customer_id, ix.event_id, ix.occurred_at, \
                fact_of_interaction(ix, self.policy)
        self._check_key(event, customer)
        if occurred > datetime.now(UTC) + timedelta(days=self.settings.future_skew_days):
            raise ValueError(f"occurred_at {occurred.isoformat()} is more than {self.settings.future_skew} "
                             "ahead of the wall clock")
        return partial(self._on_fact, ps, customer, event_id, occurred, fact)

    async def _on_fact(self, ps: PartitionState, customer: str, event_id: str, occurred: datetime,
                       fact: Fact) -> None:
        await self._advance(ps, occurred)
        assert ps.day is not None
        record = self._get(customer)
        new, changes, outcome = step.on_fact(record, fact, event_id=event_id, now_day=ps.day,
                                             ruleset=ps.ruleset, policy=self.policy)
        self.stats[outcome.value] += 1
        if new is not record:
            await self._store(ps, customer, record, new, changes)

    async def _on_profile(self, ps: PartitionState, customer: str, attributes: dict[str, str | None],
                          key: str) -> None:
        record = self._get(customer)
        ruleset = ps.ruleset if ps.day is not None else None
        new, changes = step.on_profile(record, attributes, key=key, now_day=ps.day or 0,
                                       ruleset=ruleset, policy=self.policy)
        if new is not record:
            await self._store(ps, customer, record, new, changes)

    # -- time and rules -----------------------------------------------------------------------
    async def _advance(self, ps: PartitionState, when: datetime) -> None:
        if ps.stream_time is not None and when <= ps.stream_time:
            return
        ps.stream_time = when
        day = self.policy.calendar.day(when)
        if day == ps.day:
            return
        ps.day = day
        self._save_meta(ps)
        await self.projection.set_clock(ps.partition, when, day)
        while ps.heap and ps.heap[0][0] <= day:
            due, customer = heapq.heappop(ps.heap)
            record = self._get(customer)
            if record.due != due:
                continue  # superseded by a later event
            new, changes = step.on_time(record, day, ps.ruleset, self.policy)
            self.stats["time_wakeups"] += 1
            await self._store(ps, customer, None, new, changes)  # its heap entry was just popped

    async def _adopt(self, ps: PartitionState, ruleset: RuleSet) -> None:
        current = ps.ruleset
        if current is not None and (current.id, current.version) == (ruleset.id, ruleset.version):
            return
        ps.ruleset = ruleset
        self._save_meta(ps)
        day = ps.day if ps.day is not None else self.policy.calendar.day(datetime.now(UTC))
        for customer in sorted(ps.customers):
            record = self._get(customer)
            new, changes = step.on_rules(record, day, ruleset, self.policy)
            if new is not record:
                await self._store(ps, customer, record, new, changes)
        log.warning("partition %d adopted %s v%d for %d customers", ps.partition, ruleset.id, ruleset.version,
                    len(ps.customers))

    # -- output --------------------------------------------------------------------------------
    def _get(self, customer: str) -> step.CustomerRecord:
        value = self.customers.get(customer.encode())
        return step.CustomerRecord() if value is None else unpack(value)

    async def _store(self, ps: PartitionState, customer: str, old: step.CustomerRecord | None,
                     record: step.CustomerRecord, changes: list[step.Change]) -> None:
        """``old``: the record this replaces, whose heap entry (if any) is still queued."""
        self.customers[customer.encode()] = pack(ps.partition, record)
        ps.customers.add(customer)
        if record.due is not None and (old is None or old.due != record.due):
            heapq.heappush(ps.heap, (record.due, customer))  # an unchanged due is already queued
        stream_time = ps.stream_time or datetime.now(UTC)
        ruleset = ps.ruleset
        for change in changes:
            assert ruleset is not None
            doc = SegmentChange.model_validate({
                "change_id": change.change_id(customer, record.ruleset), "customer_id": customer,
                "dimension": change.dimension, "from": change.before, "to": change.after,
                "ruleset_id": ruleset.id, "ruleset_version": ruleset.version, "cause": change.cause,
                "condition": change.explanation.condition, "metrics": dict(change.explanation.metrics),
                "explanation": list(change.explanation.rejected), "stream_time": stream_time,
                "event_id": change.cause_key if change.cause == "event" else None,
            })
            await self.changes.send(key=customer.encode(), value=doc.model_dump_json(by_alias=True).encode())
            self.stats["changes"] += 1
        await self._project(ps, customer, record, stream_time)

    async def _project(self, ps: PartitionState, customer: str, record: step.CustomerRecord,
                       stream_time: datetime) -> None:
        day = ps.day if ps.day is not None else self.policy.calendar.day(stream_time)
        values = compute(record.state, day, self.policy, record.profile)
        metrics = {m: display(m, values[m], self.policy) for m in WINDOW_METRICS}
        state = record.state
        doc = {"metrics": metrics, "ruleset": record.ruleset, "stream_time": stream_time.isoformat(),
               "due": date.fromordinal(record.due).isoformat() if record.due else None,
               "profile": record.profile, "partition": ps.partition, "day": day,
               "first_purchase": state.first_purchase, "last_purchase": state.last_purchase}
        amount = values["amount_12m"]
        await self.projection.write(customer, record.seq, dict(record.segments),
                                    int(amount) if isinstance(amount, int) else 0, doc)

    async def _dead_letter(self, event: faust.types.EventT, exc: Exception) -> None:
        msg = event.message
        key = msg.key if isinstance(msg.key, bytes) else None
        if isinstance(exc, ValidationError):
            error = first_error(exc)
        else:
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        letter = DeadLetter(
            source_topic=msg.topic, partition=msg.partition, offset=msg.offset,
            key_b64=base64.b64encode(key).decode() if key is not None else None,
            value_b64=base64.b64encode(msg.value or b"").decode(), error_class=type(exc).__name__,
            error_message=error, failed_at=datetime.now(UTC))
        await self.dead.send(key=key, value=letter.model_dump_json().encode(), partition=0)
        self.stats["dead_letters"] += 1
        log.warning("%s[%d] offset=%d customer=%s error=%s", msg.topic, msg.partition, msg.offset,
                    key.decode(errors="replace") if key else "-", error)

    @staticmethod
    def _check_key(event: faust.types.EventT, customer: str) -> None:
        key = event.message.key
        if key != customer.encode():
            shown = key.decode(errors="replace") if isinstance(key, bytes) else key
            raise ValueError(f"record key {shown!r} is not its customer_id {customer!r}")

    async def tick_all(self, when: datetime) -> None:
        value = orjson.dumps({"type": "tick", "to": when.isoformat()})
        for partition in range(self.settings.partitions):
            await self.control.send(key=b"tick", value=value, partition=partition)
