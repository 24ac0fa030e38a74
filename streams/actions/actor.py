"""The action worker: segment changes in, coupons and alerts out, exactly one grant per transition.

A faust app of its own (consumer group ``<prefix>actions``, built by ``streams.actions.app``), so
it scales apart from the segmenter workers. It takes whole fetched batches (``Actor.take``, through
``faust_compat``'s transport hook, as the worker's engine does) of ``segment-changes`` together with the
segmenter's ``control`` topic (its ticks move the clock that ends ``min_dwell`` waits; its ruleset
records bring the actions), both partitioned like the inputs: partition ``p`` of each belongs to the same worker.

Why a transition never yields a second grant, whatever crashes, rebalances or replays happen:

* **The ledger is a changelog-backed faust table** (``action-ledger``: RocksDB, compacted changelog
  topic), not Redis, which with ``appendfsync everysec`` can lose its last second. Per customer it
  keeps the last grant of each action (cooldown), the managers assigned and its recent change ids;
  per partition (key ``\\0meta:<p>``) the last segment-changes offset that had an effect, the
  dwells waiting, and how far into the coupons and alerts partitions ``p`` the ledger is known
  to reach.
* **Order per batch** (a partition's records of one fetch; the control topic's after the changes, ``ticks_last``):
  decide each change in order (``segmenter.actions``; a later change reads the ledgers the earlier ones changed)
  -> route alerts -> produce every grant, then wait for every acknowledgement before the outcomes are recorded in Redis
  (one pipeline; idempotent) -> write the ledger -> flush faust's producer (the changelog) -> commit the offsets.
* **The one window** is a crash after a grant is acknowledged and before the ledger's changelog
  write. So before the first record of a partition it has just been given, the worker reads its
  coupons and alerts partitions from where the ledger's reach ends to their current end and folds
  every grant found there into the ledger: the redelivered change then finds its grant done.
  Coupons and alerts of partition ``p`` are only written by the owner of segment-changes ``p``.
* **Replays** of the segment-changes topic (the group's offsets reset) are skipped by offset; a
  change the segmenter emitted twice (it is at-least-once) has a new offset but its ``change_id``
  is in the customer's recent ids.
* Grant ids, idempotency keys and coupon codes derive from ``change_id`` and the action, so any copy
  that reaches a topic anyway is recognisably the same grant. Suppression records on the audit topic
  are a log and can repeat after a crash; the counts in Redis cannot (``streams.actions.ledger``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import faust
import orjson
from aiokafka import TopicPartition
from pydantic import ValidationError

from schemas.outputs import (
    CHANGE_ADAPTER,
    CustomerErased,
    Occasion,
    SegmentChange,
)
from segmenter.actions import (
    ChangeView,
    Grant,
    Ledger,
    Outcome,
    decide,
    duration_s,
    fire_due,
)
from streams.actions.documents import audit_document, grant_document
from streams.actions.ledger import ActionStore
from streams.actions.partition import ActionPartition
from streams.actions.rulesets import KnownRulesets
from streams.collector import Collector
from streams.failpoints import Failpoints
from streams.kafka import faust_compat
from streams.kafka.deadletters import dead_letter
from streams.kafka.fetched import TP, Batch, Current, Record
from streams.kafka.reading import read_from
from streams.kafka.topics import producer
from streams.names import Names
from streams.settings import Settings
from streams.text import clip

log = logging.getLogger("segmenter.actions")


@dataclass
class Held:
    """What one partition's records of a fetched batch decided, not yet carried out: outcomes in order, the ledgers
    they changed (later decisions of the batch read these), and the last offset that had an effect."""

    outcomes: list[Outcome] = field(default_factory=list)
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    done: int | None = None


def ticks_last(batch: Batch, control: str) -> list[tuple[TP, Sequence[Record]]]:
    """The batch's partitions, those of the ``control`` topic after the segment changes (otherwise in the fetch's
    order). A fetch brings segment changes and the ticks produced after them together, in no set order (aiokafka
    shuffles a fetch's partitions); a tick decided first would move the clock past a ``min_dwell`` wait that one of
    those changes ends, and grant what the change, seen first, would have suppressed. A tick only moves the clock
    forward, so deciding it after the changes of its fetch never grants a dwell it would not. A tick fetched
    before changes sent ahead of it (in an earlier fetch) is still decided first: Kafka orders no two topics."""
    return sorted(batch.items(), key=lambda item: item[0].topic == control)


class Actor:
    """What the action worker does with every record (``take``: whole fetched batches); its state lives in the
    ledger table and its partition entries."""

    def __init__(self, app: faust.App, settings: Settings, names: Names, ledger: Any) -> None:
        self.app, self.settings, self.names, self.ledger = app, settings, names, ledger
        self.store = ActionStore(settings.redis_url, names.redis, settings.actions_key_ttl_s,
                                 **settings.redis_options())
        self.producer: Any = None  # made in start(): aiokafka wants the running loop
        self.parts: dict[int, ActionPartition] = {}
        self.stats: Counter[str] = Counter()
        self.rulesets = KnownRulesets(settings, self.stats)
        self.topics = frozenset((names.segment_changes, names.control))  # taken as whole batches (``take``)
        self.failpoints = Failpoints(settings.failpoint)
        self._started = False
        self._busy: tuple[float, str] | None = None  # since when, and which record, the worker is busy
        self._task: asyncio.Task[Any] | None = None
        horizon = duration_s(settings.actions_replay_horizon)
        self.horizon_s = horizon or None
        self.collector = Collector(settings.gc_full_every_s, settings.gc_young_every_s, settings.gc_full_growth,
                                   settings.malloc_trim_every_s)

    async def start(self) -> None:
        self.producer = producer(self.settings, linger_ms=0)
        await self.producer.start()
        self._started = True
        await self.rulesets.read()

    async def close(self) -> None:
        if self._started:
            await self.producer.stop()
        await self.store.close()

    def forget(self, revoked: Iterable[TP]) -> None:
        for tp in revoked:
            self.parts.pop(tp.partition, None)

    async def take(self, batch: Batch, current: Current) -> None:
        """A fetched batch (topic-partition -> records, ``faust_compat``'s transport hook, as the worker's engine
        takes its input): each partition's records decided in order, what they grant carried out together (every
        grant sent, then each acknowledgement awaited before its Redis record; the ledger written after), then the
        ledger's changelog flushed and the batch's offsets committed. No record goes through faust's per-event
        stream, whose offset bookkeeping could leave a fetched record unhanded (``docs/robustness.md``).
        ``current(tp)``: the partition is still ours in the generation it was fetched in; the records of one that
        moved are left to its next owner, which reads them from the commit (nothing of them was sent)."""
        self._task = asyncio.current_task()
        offsets: dict[TP, int] = {}
        for tp, records in ticks_last(batch, self.names.control):
            held = Held()
            last = None
            for record in records:
                if not current(tp):
                    break
                self._busy = (time.monotonic(), f"{record.topic}[{record.partition}]@{record.offset}")
                with faust_compat.handling(record):  # the ledger's changelog and store partition are the record's
                    await self.handle(record, held)
                self._busy = None
                last = record
            if last is None or not current(tp):
                continue
            with faust_compat.handling(last):
                await self._carry_out(self.parts[last.partition], held)
            offsets[tp] = last.offset + 1
        if offsets:
            await self.app.producer.flush()  # the ledger's changelog records, before the offsets they cover
            if not await faust_compat.commit(self.app, offsets):
                self.stats["commits_refused"] += 1
        self.collector.freeze()  # what the batch left behind (see streams/collector.py)

    def held(self, limit_s: float = 5.0) -> bool:
        """Whether one record has held the worker for ``limit_s`` or more (Redis away, a slow broker)."""
        busy = self._busy
        return busy is not None and time.monotonic() - busy[0] >= limit_s

    def watchdog(self, limit_s: float = 10.0) -> None:
        """Called by a timer: say so, with where it waits, when one record has held the worker too long."""
        busy, task = self._busy, self._task
        if busy is None or task is None or not self.held(limit_s):
            return
        chain, coro = [], cast(Any, task.get_coro())
        while coro is not None:  # a coroutine, or an async generator it awaits (any object with those frames)
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if frame is not None:
                chain.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        log.warning("actions: one record (%s) has held the worker for %.0fs; waiting in %s", busy[1],
                    time.monotonic() - busy[0], " > ".join(chain) or "?")

    # -- one record ---------------------------------------------------------------------------------
    async def handle(self, message: Any, held: Held) -> None:
        """One record decided; what it does is added to ``held`` (carried out by ``take``, or here first where the
        record's own effect must come after it: an erasure)."""
        if not self._started:
            await self.start()
        topic, number, offset, value = message.topic, message.partition, message.offset, message.value
        part = self.parts.get(number) or await self._open(number)
        if topic == self.names.control:
            doc = orjson.loads(value)
            if doc["type"] == "tick":
                part.clock = max(part.clock, datetime.fromisoformat(doc["to"]).timestamp())
            elif doc["type"] == "rules":
                self.rulesets.learn(doc["yaml"], doc.get("source", "rules"))
            self._collect(part, [], {}, None, held)  # dwells the clock has passed
            return
        if offset <= part.done:
            self.stats["replayed"] += 1  # the ledger already holds what this change did
            return
        try:
            change = CHANGE_ADAPTER.validate_json(value)
        except ValidationError as exc:
            key, letter = dead_letter(TopicPartition(topic, number), message, exc)
            await (await self.producer.send(self.names.dead_letters, key=key, value=letter))
            return
        if isinstance(change, CustomerErased):  # forget what the ledger and Redis hold of it; no dwell of it fires
            await self._carry_out(part, held)  # what came before the erasure first
            ledger = self._ledger(change.customer_id)
            ids = self.rulesets.action_ids()
            await self.store.forget(change.customer_id, [*ledger.granted, *(f"{a}:{c}" for a in ids
                                                                                for c in ledger.seen)])
            self.ledger.pop(change.customer_id.encode(), None)
            part.pending = [p for p in part.pending if p.change.customer_id != change.customer_id]
            self.stats["erased"] += 1
            return
        if isinstance(change, Occasion):  # matched as dimension "#<occasion>", from the lead, to the date
            view = ChangeView(change.change_id, change.customer_id, f"#{change.occasion}", str(change.lead_days),
                              change.date.isoformat(), change.stream_time.timestamp(), change.ruleset_id,
                              change.ruleset_version, change.profile, "time")
        elif isinstance(change, SegmentChange):
            view = ChangeView(change.change_id, change.customer_id, change.dimension, change.from_segment,
                              change.to_segment, change.stream_time.timestamp(), change.ruleset_id,
                              change.ruleset_version, change.profile, change.cause)
        else:  # a tag change: no action is defined on tags
            return
        part.clock = max(part.clock, view.stream_s)
        actions = (await self.rulesets.of(view)).actions
        waiting = [p for p in part.pending if p.change.customer_id == view.customer_id]
        if not actions and not waiting:
            self._collect(part, [], {}, None, held)
            return
        ledger = held.ledgers.get(view.customer_id) or self._ledger(view.customer_id)
        emitted_s = message.timestamp / 1000 if message.timestamp and message.timestamp > 0 else None
        out = decide(ledger, view, actions, waiting, replay_before_s=self._replay_before(emitted_s))
        if not out.effective and change.change_id in ledger.seen:
            self.stats["duplicates"] += 1
        self._collect(part, [out], {view.customer_id: ledger}, offset if out.effective else None, held)

    def _replay_before(self, emitted_s: float | None) -> float | None:
        """Changes whose stream time is older than this are history. Measured back from when the change was
        emitted (its record's timestamp), not from when it is read: a change that waited in the topic while
        the action worker was down or behind is as live as it was then."""
        if not self.settings.actions_enabled:
            return float("inf")
        if self.horizon_s is None:
            return None
        return (emitted_s if emitted_s and emitted_s > 0 else time.time()) - self.horizon_s

    def _ledger(self, customer: str) -> Ledger:
        raw = self.ledger.get(customer.encode())
        return Ledger.from_dict(orjson.loads(raw) if raw else None)

    def _collect(self, part: ActionPartition, outcomes: list[Outcome], ledgers: dict[str, Ledger],
                 done: int | None, held: Held) -> None:
        """Decided now, carried out with the batch: the partition's waiting dwells updated at once (a later record
        of the batch may end one), and the dwells now due fired (a later decision sees their grants)."""
        for out in outcomes:
            ended = {(p.action_id, p.change.change_id) for p in out.cancelled}
            part.pending = [p for p in part.pending if (p.action_id, p.change.change_id) not in ended]
            part.pending.extend(out.pending)
        held.outcomes.extend(outcomes)
        held.ledgers.update(ledgers)
        due = [p for p in part.pending if p.due_s <= part.clock]
        for pending in sorted(due, key=lambda p: p.due_s):
            customer = pending.change.customer_id
            ledger = held.ledgers.setdefault(customer, self._ledger(customer))
            held.outcomes.append(fire_due(ledger, pending, self.rulesets.cached(pending.change).actions))
            part.pending.remove(pending)
        if done is not None:
            held.done = done if held.done is None else max(held.done, done)

    async def _carry_out(self, part: ActionPartition, held: Held) -> None:
        """Every grant and suppression held, then the ledger: each grant sent, every acknowledgement awaited before
        the batch's Redis records (one round trip), the ledger written last (a crash before that finds the grants
        on their topics when the partition is taken again)."""
        outcomes, ledgers, done = held.outcomes, held.ledgers, held.done
        held.outcomes, held.ledgers, held.done = [], {}, None
        grants = [g for out in outcomes for g in out.grants]
        suppressed = [s for out in outcomes for s in out.suppressed]
        if not outcomes or not any(out.effective for out in outcomes):
            return
        managers = await self._assign(grants, ledgers)
        sent: list[tuple[Grant, str, bytes, Any]] = []
        for n, grant in enumerate(grants):
            if sent and "between-grants" in self.failpoints.left:  # a crash test: the grant before is acknowledged,
                await sent[-1][3]                                  # this one never sent
                self.failpoints.hit("between-grants")
            topic, document = grant_document(grant, managers.get(n), self.names, self.rulesets)
            future = await self.producer.send(topic, key=grant.change.customer_id.encode(), value=document,
                                              partition=part.number)
            sent.append((grant, topic, document, future))
        audits = []
        for s in suppressed:
            audit = audit_document(s)
            audits.append((await self.producer.send(self.names.action_audit, key=s.change.customer_id.encode(),
                                                    value=audit, partition=part.number), audit))
        records: list[tuple[str, str, str, str, bytes, str]] = []
        for grant, topic, document, future in sent:
            metadata = await future
            part.reach[topic] = max(part.reach.get(topic, 0), metadata.offset + 1)
            self.failpoints.hit("after-grant")
            records.append((grant.key, grant.action.target, grant.action.id, "issued", document,
                            grant.change.customer_id))
            self.stats[f"issued_{grant.action.kind}"] += 1
        for s, (future, audit) in zip(suppressed, audits, strict=True):
            await future
            records.append((s.key, s.action.target, s.action.id, s.reason, audit, s.change.customer_id))
            self.stats[f"suppressed_{s.reason}"] += 1
            log.info("suppressed %s for %s (%s): %s", s.action.id, clip(s.change.customer_id), s.change.change_id,
                     s.reason)
        await self.store.record_many(records)  # acknowledged, all of them: their Redis records in one round trip
        for customer, ledger in ledgers.items():
            self.ledger[customer.encode()] = orjson.dumps(ledger.to_dict())
        if done is not None:
            part.done = max(part.done, done)
        self.ledger[part.key] = part.to_bytes()

    async def _assign(self, grants: list[Grant], ledgers: dict[str, Ledger]) -> dict[int, tuple[str, str]]:
        """The account manager and team of each alert among ``grants`` (by position) whose action names a roster,
        chosen for the whole batch together (``ActionStore.assign_many``) and kept in the customers' ledgers."""
        asks, at = [], []
        for n, grant in enumerate(grants):
            alert = grant.action.alert
            roster = self.rulesets.cached(grant.change).rosters.get(alert.roster or "") if alert is not None else None
            if roster is None:
                continue
            team, members = roster.team_of(grant.change.profile)
            ledger = ledgers[grant.change.customer_id]
            asks.append((roster, members, team, grant.change.customer_id, ledger.managers.get(roster.name)))
            at.append(n)
        chosen = await self.store.assign_many(asks)
        for (roster, _, _, customer, _), manager in zip(asks, chosen, strict=True):
            ledgers[customer].managers[roster.name] = manager
        return {n: (manager, ask[2] or "default") for n, ask, manager in zip(at, asks, chosen, strict=True)}

    # -- taking a partition: fold in grants the ledger may have missed -------------------------------
    async def _open(self, number: int) -> ActionPartition:
        part = ActionPartition.from_bytes(number, self.ledger.get(f"\x00meta:{number}".encode()))
        outputs = (self.names.coupons, self.names.alerts, *self.rulesets.publish_topics(self.names))
        starts = {TopicPartition(t, number): part.reach.get(t, 0) for t in outputs}
        found = await read_from(self.settings, starts)
        ledgers: dict[str, Ledger] = {}
        for tp, offset, _, value in found:
            doc = orjson.loads(value)
            customer = doc["customer_id"]
            ledger = ledgers.setdefault(customer, self._ledger(customer))
            stream_s = datetime.fromisoformat(doc["stream_time"]).timestamp()
            if not ledger.has_granted(doc["action"], doc["change_id"]) and doc["change_id"] not in ledger.seen:
                self.stats["reconciled"] += 1
                log.warning("partition %d: %s %s of change %s was produced but not in the ledger (crash); "
                            "recorded now", number, doc["type"], doc["idempotency_key"], doc["change_id"])
            ledger.record_grant(doc["action"], doc["change_id"], stream_s)
            if doc["type"] == "alert" and doc.get("manager"):
                for action in (await self.rulesets.of_version(doc["ruleset_id"], doc["ruleset_version"])).actions:
                    if action.id == doc["action"] and action.alert is not None and action.alert.roster:
                        ledger.managers[action.alert.roster] = doc["manager"]
            part.pending = [p for p in part.pending
                            if (p.action_id, p.change.change_id) != (doc["action"], doc["change_id"])]
            await self.store.record(doc["idempotency_key"], doc["segment"], doc["action"], "issued", value,
                                    customer=customer)
            part.reach[tp.topic] = offset + 1
        for customer, ledger in ledgers.items():
            self.ledger[customer.encode()] = orjson.dumps(ledger.to_dict())
        if found:
            self.ledger[part.key] = part.to_bytes()
        self.parts[number] = part
        log.info("actions: partition %d taken (%d dwell(s) waiting, %d grant(s) folded in from the topics)",
                    number, len(part.pending), len(found))
        return part
