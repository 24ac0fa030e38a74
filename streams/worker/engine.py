"""The data plane: whole fetched batches per partition, state in memory, one write per customer per flush.

faust owns the group, the assignment, table recovery, timers and the web server; the records of the
input topics never enter faust's per-event stream machinery. ``faust_compat`` hands each fetched
batch (topic-partition -> records) to :meth:`Engine.take`, which runs the core over it with no
``await`` per record, and then sends the resulting segment-changes as whole producer batches.

Durability — every ``flush_interval_s`` or ``flush_max_dirty`` changed customers, one flush in flight:

1. snapshot (synchronously): the record of every customer changed since the last snapshot (immutable
   values, encoded afterwards in slices between batches), the partition metadata, and the input
   offsets processed so far;
2. wait until every segment-change and dead letter produced before the snapshot is acknowledged;
3. project the snapshot into Redis (retried while Redis is away; nothing is committed meanwhile), a chunk of rows
   at a time, each written while the next is encoded;
4. send it to the tables' changelogs (one record per changed customer) and wait for it;
5. write it into the local RocksDB store and record the changelog offset (faust's recovery reads
   the changelog from there on a restart or a move to another worker);
6. commit the input offsets.

A crash anywhere before 6 replays the events after the last commit. The state restored from the
changelog already holds whatever step 4 wrote, and the core's ``event_id`` de-duplication inside
each customer's state skips those events; their changes (step 2) and their projection (step 3) were
acknowledged before, so nothing is lost and nothing is counted twice (a replayed change carries the
same ``change_id``). Redis may briefly hold a state the replay is about to rebuild; every write is
ordered by (partition epoch, record seq), and each opening of a partition durably takes a new epoch
before it writes, so the rebuilt state always wins over whatever a dead or stale owner wrote.

Per partition the engine keeps the stream time, each customer's due day and a heap of (due day, customer),
so time-driven changes wake exactly the customers that are due (an entry a later event superseded is skipped,
and the heap is rebuilt from the due days when such entries outnumber the live ones); all are rebuilt from the
store on assignment.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import faust
import redis.exceptions
from aiokafka import AIOKafkaProducer

from streams.collector import Collector
from streams.failpoints import Failpoints
from streams.kafka import faust_compat
from streams.kafka.deadletters import dead_letter
from streams.kafka.fetched import TP, Batch, Current, Record
from streams.kafka.topics import producer as kafka_producer
from streams.names import Names
from streams.readmodel.writer import Projection
from streams.settings import Settings
from streams.stored import due_of
from streams.worker import population
from streams.worker.adoption import Adoption
from streams.worker.edge import BAD_INPUT, ERASE, FACT, OVERRIDE, PROFILE, RETIRE, RULES, SKIP, TAG, TICK, Edge
from streams.worker.flush import STUCK_FLUSH_S, Flusher
from streams.worker.metrics import WorkerMetrics, observe_batch, observe_own
from streams.worker.partition import Partition
from streams.worker.persist import Delivery, send_batches
from streams.worker.ranking import Ranking, ranked_stored
from streams.worker.records import Customers
from streams.worker.recovery import Reconciler
from streams.worker.routing import Router

log = logging.getLogger("segmenter.worker")
RUN_STEP = 512  # records run between two turns of the event loop (a few ms)


class Engine:
    """Runs fetched batches through the core per partition, with its parts: ``store`` (the customers held, read
    back, changed, erased: ``streams.worker.records.Customers``), ``flusher`` (what makes them durable:
    ``streams.worker.flush.Flusher``), ``reconciler`` (what a stopped worker published past the saved state:
    ``streams.worker.recovery.Reconciler``), ``ranking`` (the population's ranks: ``streams.worker.ranking``) and
    ``adoption`` (rulesets coming into force, their customers re-evaluated in steps: ``streams.worker.adoption``)."""

    def __init__(self, app: faust.App, settings: Settings, names: Names, tables: Mapping[str, Any]) -> None:
        self.app, self.settings, self.names = app, settings, names
        self.policy = settings.policy()
        self.customers, self.meta = tables[names.customers_table], tables[names.partitions_table]
        self.projection = Projection(settings.redis_url, names.redis, settings.story_changes,
                                     **settings.redis_options())
        self.parts: dict[int, Partition] = {}
        self.stats: Counter[str] = Counter()
        self.topics = frozenset(names.inputs)
        self.edge = Edge(settings, names, self.policy)
        self.router = Router(settings, names)
        self.erase_secret = settings.erasure_secret() or b""  # the edge refuses erasures without a key
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._dead: list[tuple[bytes | None, bytes]] = []
        self._failpoints = Failpoints(settings.failpoint)
        self._stuck_said = 0.0
        self.collector = Collector(settings.gc_full_every_s, settings.gc_young_every_s, settings.gc_full_growth,
                                   settings.malloc_trim_every_s)
        self.metrics = WorkerMetrics() if settings.metrics_port else None
        self.flusher = Flusher(app, settings, self.policy, self.parts, tables=(self.customers, self.meta),
                               projection=self.projection, stats=self.stats,
                               producer=lambda: self.producer(),  # noqa: PLW0108 - bound when called
                               send_outputs=lambda: self._send_outputs(),  # noqa: PLW0108 - bound when called
                               collector=self.collector,
                               failpoints=self._failpoints, metrics=self.metrics)
        self.store = Customers(settings, self.policy, self.customers, stats=self.stats, flusher=self.flusher,
                               metrics=self.metrics, erase_secret=self.erase_secret)
        self.reconciler = Reconciler(settings, names, self.policy, customers=self.store, stats=self.stats)
        self.ranking = Ranking(settings, names, self.policy, self.parts, customers=self.store, stats=self.stats)
        self.adoption = Adoption(self.policy, self.parts, self.customers, store=self.store,
                                 flusher=self.flusher, lock=self._lock, stats=self.stats,
                                 send_outputs=lambda: self._send_outputs(),  # noqa: PLW0108 - bound when called
                                 release=self._release, crash=settings.on_error == "crash")
        self._ops: dict[str, Callable[..., None]] = {
            FACT: self.store.fact, PROFILE: self.store.profile, TICK: self.store.advance, RULES: self.adoption.adopt,
            RETIRE: self.adoption.retire, OVERRIDE: self.store.override, TAG: self.store.tag, ERASE: self.store.erase,
            SKIP: lambda part: None}

    # -- lifecycle -------------------------------------------------------------------------------
    async def producer(self) -> AIOKafkaProducer:
        """The worker's one producer (changes, dead letters, changelogs, population summaries), started on first
        use."""
        if self._producer is None:
            producer = kafka_producer(self.settings, max_batch_size=1 << 20, max_request_size=8 << 20)
            await producer.start()
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        self.adoption.close()
        async with self._lock:
            await self.flusher.now()
        if self._producer is not None:
            await self._producer.stop()
        await self.ranking.close()
        await self.publish_counters()  # the final figures, for whoever reads them after the worker stopped
        await self.projection.close()

    async def publish_counters(self) -> None:
        try:
            await self.projection.set_counters(f"{socket.gethostname()}:{os.getpid()}", self.stats)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning("counters not published (redis: %s); the next try is in 5 s", exc)  # stats only

    async def on_revoked(self, revoked: Sequence[TP]) -> None:
        """Before partitions move: make everything processed so far durable and committed, then forget."""
        async with self._lock:
            await self.flusher.now()
            numbers = sorted({tp.partition for tp in revoked} & set(self.parts))
            for number in numbers:
                part = self.parts.pop(number)  # held records were never committed: the next owner reads them
                for customer in part.records:
                    self.flusher.forget(customer)
            self.stats["revoked_partitions"] += len(numbers)
            if numbers:
                log.info("partitions %s revoked: everything processed in them is flushed and committed",
                         ", ".join(map(str, numbers)))

    # -- the batch entry point (called by faust_compat for every fetched batch) -------------------
    async def take(self, batch: Batch, current: Current) -> None:
        """``current(tp)``: the partition is still ours in its fetch's generation (checked under the lock)."""
        handed = time.perf_counter()
        await self.flusher.backpressure()  # not under the lock: a rebalance's revocation must be able to take it
        async with self._lock:
            self.edge.new_batch()
            for tp, records in batch.items():
                if not current(tp):
                    continue  # faust seeks back to the committed offset; these come again if still ours
                part = self.parts.get(tp.partition) or await self._open(tp.partition)
                if part.ruleset is None and not part.unruled and tp.topic != self.names.control:
                    self._hold(part, tp, records)
                    continue
                for start in range(0, len(records), RUN_STEP):
                    if start:
                        await asyncio.sleep(0)  # the flush in flight gets its replies and sends its next call
                    self._run(part, tp, records[start : start + RUN_STEP])
            if await self._send_outputs():
                observe_own(self.metrics, handed)
            if self.flusher.due():
                await self.flusher.start()

    def _run(self, part: Partition, tp: TP, records: Sequence[Record]) -> None:
        decode, ops, failpoints = self.edge.decoders[tp.topic], self._ops, self._failpoints
        router = self.router if tp.topic in self.router.topics else None
        changed_before = len(part.changes)
        for record in records:
            if router is not None and (right := router.misplaced(tp, record)) is not None:
                self._misplaced(tp, record, right)
                continue
            try:
                op, args = decode(record)
            except BAD_INPUT as exc:
                self._dead.append(dead_letter(tp, record, exc))
                self.stats["dead_letters"] += 1
                continue
            try:
                if failpoints:
                    failpoints.hit("process-error")
                ops[op](part, *args)
            except Exception as exc:  # a defect met by one record: it must not stop the partition
                if self.settings.on_error == "crash":
                    raise
                self._dead.append(dead_letter(tp, record, exc, reason="processing_error"))
                self.stats["processing_errors"] += 1
                continue
            if failpoints:
                failpoints.hit("mid-batch")
        part.offsets[tp] = records[-1].offset + 1
        if tp.topic == self.names.control:
            part.control_next = (tp, records[-1].offset + 1)
            if part.reevaluating is not None:  # committed once every customer is re-evaluated (``adoption``)
                del part.offsets[tp]
        if part.replaying is not None:
            self.reconciler.replayed(part, tp, records[-1].offset + 1, self.store.ranks)
        if self.metrics is not None:
            self.metrics.events[tp.topic] += len(records)
            if len(part.changes) > changed_before:
                observe_batch(self.metrics, records[0].timestamp)

    def _hold(self, part: Partition, tp: TP, records: Sequence[Record]) -> None:
        """No ruleset yet (data may be fetched before its control record): keep the records until one
        comes, so no change is skipped; past ``hold_without_rules`` records, go on without."""
        if not part.held:
            log.info("partition %d: no ruleset yet, holding its records until one arrives", part.number)
        part.held.append((tp, records))
        held = sum(len(batch) for p in self.parts.values() for _, batch in p.held)
        if held > self.settings.hold_without_rules:
            log.error("no ruleset after %d held records: partition %d goes on unclassified (publish one with "
                      "`segmenter rules apply`; every customer is classified when it arrives)", held, part.number)
            part.unruled = True
            self._release(part)

    def _release(self, part: Partition) -> None:
        held, part.held = part.held, []
        for tp, records in held:
            self._run(part, tp, records)

    async def population_round(self) -> None:
        """Called by a timer: the partitions' summaries out, everyone's in; new ranks adopted under the lock."""
        ranks = await self.ranking.round(self.producer)
        if ranks is not None:
            async with self._lock:
                self.ranking.adopt(ranks)
                await self._send_outputs()

    async def _replay_overdue(self) -> None:
        """Partitions whose replay has not reached the inputs' ends ``REPLAY_WAIT_S`` after the opening: put right
        now (``streams.worker.recovery``)."""
        if not self.reconciler.overdue(self.parts.values()):
            return
        async with self._lock:  # a rebalance may have dropped some meanwhile: looked for again
            for part in self.reconciler.overdue(self.parts.values()):
                replaying = part.replaying
                assert replaying is not None
                log.warning("partition %d: the replay has not reached the end of %d input partitions %.0fs after the "
                            "opening; the changes published past the saved state are checked now", part.number,
                            len(replaying.targets), time.monotonic() - replaying.began)
                self.reconciler.put_right(part, self.store.ranks)
            await self._send_outputs()  # before any snapshot: the changes belong to the state it saves

    async def tick(self) -> None:
        """Called by a timer: a quiet worker still flushes what it has; a flush stuck somewhere is told."""
        (stage, since), now = self.flusher.stage, time.monotonic()
        stuck = self.flusher.in_flight() and now - since >= STUCK_FLUSH_S
        if stuck and now - self._stuck_said >= STUCK_FLUSH_S:
            self._stuck_said = now
            log.warning("a flush has waited %.0fs at '%s' (nothing is committed meanwhile)", now - since, stage)
        self.adoption.check()
        await self._replay_overdue()
        if self.flusher.due() and any(p.dirty or p.meta_dirty or p.offsets for p in self.parts.values()):
            async with self._lock:
                await self.flusher.start()
        self.collector.freeze()

    # -- partitions: opened on their first batch after an assignment -------------------------------
    async def _open(self, number: int) -> Partition:
        part = Partition.from_meta(number, faust_compat.stored_get(self.meta, number, f"p{number}".encode()),
                                   self.policy)
        # A new epoch, durable before any write of this incarnation reaches Redis: whatever an earlier
        # owner (crashed, or a zombie) projected, this one's writes are newer.
        part.epoch += 1
        await self.flusher.persist_meta({number: part.meta_value()})
        count = 0
        metrics = population.needed(part.ruleset)
        part.index = population.PartitionIndex(metrics) if metrics else None
        for key, value in faust_compat.stored_items(self.customers, number):
            count += 1
            due = due_of(value)
            if due:
                customer = key.decode()
                part.heap.append((due, customer))
                part.dues[customer] = due
            if part.index is not None and part.day is not None:
                part.index.update(key.decode(), ranked_stored(part.day, value, self.policy))
        heapq.heapify(part.heap)
        log.info("partition %d opened (epoch %d): %d customers, %d due", number, part.epoch, count,
                    len(part.heap))
        self.parts[number] = part
        await self.reconciler.open(part, self.store.ranks)  # published past the saved state by a stopped worker
        return part

    def _misplaced(self, tp: TP, record: Record, right: int) -> None:
        self.router.found(tp, record, right)
        if not self.router.reroute:
            self._dead.append(dead_letter(tp, record, ValueError(
                f"on partition {tp.partition}, murmur2 of its customer id gives {right}"), reason="wrong_partition"))
            self.stats["wrong_partition"] += 1

    # -- output ----------------------------------------------------------------------------------
    async def _send_outputs(self) -> int:
        """Everything the batch made handed to the producer; returns how many segment changes."""
        producer = await self.producer()
        changes = 0
        for (topic, partition), records in self.router.take_pending().items():  # acknowledged before the commit
            sent = await send_batches(producer, topic, partition, [(r.key, r.value) for r in records])
            self.flusher.awaiting(Delivery(None, f, n) for f, n in sent)
        for part in self.parts.values():
            if part.changes:
                sent = await send_batches(producer, self.names.segment_changes, part.number, part.changes)
                self.flusher.awaiting(Delivery(part.number, f, n) for f, n in sent)
                changes += len(part.changes)
                part.changes = []
        if self._dead:
            sent = await send_batches(producer, self.names.dead_letters, 0, self._dead)
            self.flusher.awaiting(Delivery(None, f, n) for f, n in sent)
            self._dead = []
        return changes
