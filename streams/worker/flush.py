"""The engine's flushes: snapshot, then changes acknowledged, Redis, changelog + store, commit (the steps and
why they are safe are told in ``streams.worker.engine``'s docstring). ``Flusher`` is a part the engine holds: it
reads and resets the engine's partitions, and owns the rest of what a flush needs."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from segmenter.encoder import StateEncoder
from segmenter.policy import Policy
from streams.collector import Collector
from streams.failpoints import Failpoints
from streams.kafka import faust_compat
from streams.kafka.fetched import TP
from streams.readmodel.writer import CHUNK, Projection, Written
from streams.settings import Settings
from streams.stored import unpack
from streams.worker.documents import Changed, encode_changed, projected_row
from streams.worker.metrics import WorkerMetrics
from streams.worker.partition import Partition
from streams.worker.persist import Delivery, Snapshot, persist

log = logging.getLogger("segmenter.worker")
SLOW_FLUSH_S = 2.0  # a flush that took longer is logged with where its time went
STUCK_FLUSH_S = 30.0  # a flush in flight this long at one stage is logged (again every 30 s)
FLUSH_STAGES = ("encode", "acked", "redis", "changelog", "commit")  # the counters flush_ms_<stage>
ENCODE_STEP = 256  # customers encoded between two looks at the event loop (a few ms)


class Flusher:
    """Makes what the engine processed durable, one flush in flight: ``snapshot`` (synchronously, under the
    engine's lock), then in the background encode, wait for the changes produced before the snapshot, Redis,
    changelog + store, commit (``write``). It owns the state encoder (its memo of very active customers' older
    days), the deliveries to wait for, the customers Redis refused, and where the flush in flight is.

    ``parts`` are the engine's partitions (read and reset by ``snapshot``); ``producer`` and ``send_outputs`` are
    the engine's (the producer, started on first use; what the engine has to send before a final flush)."""

    def __init__(self, app: Any, settings: Settings, policy: Policy, parts: dict[int, Partition], *,
                 tables: tuple[Any, Any], projection: Projection, stats: Counter[str],
                 producer: Callable[[], Awaitable[AIOKafkaProducer]], send_outputs: Callable[[], Awaitable[object]],
                 collector: Collector, failpoints: Failpoints, metrics: WorkerMetrics | None) -> None:
        self.app, self.settings, self.policy, self.parts = app, settings, policy, parts
        self.customers, self.meta = tables
        self.projection, self.stats, self.failpoints, self.metrics = projection, stats, failpoints, metrics
        self._producer, self._send_outputs = producer, send_outputs
        self.encoder = StateEncoder()  # a very active customer's older days are encoded once, not per flush
        self.collector = collector
        self._flushing: asyncio.Task[None] | None = None
        self._deliveries: list[Delivery] = []
        self._last_flush = time.monotonic()
        self._quarantined: set[str] | None = None  # customers Redis refused (loaded at the first flush)
        self.stage: tuple[str, float] = ("idle", time.monotonic())  # where the flush in flight is, since when

    # -- what the engine tells it ------------------------------------------------------------------
    def awaiting(self, deliveries: Iterable[Delivery]) -> None:
        """Produced records the next snapshot waits for (acknowledged before anything after them is committed)."""
        self._deliveries.extend(deliveries)

    def forget(self, customer: str) -> None:
        """A customer no longer held in memory (evicted, erased, its partition revoked): its memo goes."""
        self.encoder.forget(customer)

    def dirty(self) -> int:
        """Customers changed since the last snapshot."""
        return sum(len(p.dirty) for p in self.parts.values())

    def due(self) -> bool:
        return (self.dirty() >= self.settings.flush_max_dirty
                or time.monotonic() - self._last_flush >= self.settings.flush_interval_s)

    def in_flight(self) -> bool:
        return self._flushing is not None and not self._flushing.done()

    async def backpressure(self, ahead: int = 1) -> None:
        """With a flush in flight and ``ahead`` more already due, wait for it: what a kill can lose (applied,
        not committed) stays within about ``ahead`` + 1 flushes, and flushes stay near their configured size instead
        of growing with everything processed while the one before was writing."""
        flushing = self._flushing
        if flushing is not None and not flushing.done() and self.dirty() >= ahead * self.settings.flush_max_dirty:
            self.stats["flush_waits"] += 1
            t0 = time.monotonic()
            await asyncio.shield(flushing)
            self.stats["flush_wait_ms"] += round((time.monotonic() - t0) * 1000)

    async def start(self) -> None:
        """Under the lock: snapshot now, do the I/O in the background (one flush in flight)."""
        if self._flushing is not None:
            if not self._flushing.done():
                return  # the next batch tries again
            self._flushing.result()  # a failed flush crashes the worker here
        self._flushing = asyncio.create_task(self.write(self.snapshot()), name="segmenter.flush")
        self.collector.freeze()

    async def now(self) -> None:
        """Under the lock: wait for the flush in flight, then send the engine's outputs and flush everything left."""
        if self._flushing is not None:
            await self._flushing
            self._flushing = None
        await self._send_outputs()
        await self.write(self.snapshot())

    def snapshot(self) -> Snapshot:
        """What changed since the last snapshot, taken and reset (synchronously: under the engine's lock)."""
        changed: list[Changed] = []
        erased: list[str] = []
        tombstones: dict[int, list[tuple[bytes, bytes | None]]] = {}
        meta: dict[int, dict[str, Any]] = {}
        clocks: dict[int, tuple[str, int]] = {}
        offsets: dict[TP, int] = {}
        deliveries, self._deliveries = self._deliveries, []
        published = {d.partition for d in deliveries}  # their meta records how far the saved state's changes go
        replaying = {p.number for p in self.parts.values() if p.replaying is not None}
        for part in self.parts.values():
            number, epoch, day, records = part.number, part.epoch, part.day, part.records
            history = part.history
            changed += [(number, epoch, day, customer, records[customer], history.pop(customer, []))
                        for customer in part.dirty]
            if part.deleted:  # erased: a tombstone, unless an event after the erasure made the customer again
                gone = sorted(part.deleted - part.dirty)
                erased.extend(part.deleted)
                tombstones.setdefault(number, []).extend((c.encode(), None) for c in gone)
                part.deleted = set()
            part.dirty = set()
            if part.meta_dirty or part.number in published:
                meta[part.number] = part.meta_doc()
                part.meta_dirty = False
            if part.clock_dirty and part.stream_time is not None and day is not None:
                clocks[part.number] = (part.stream_time.isoformat(), day)
                part.clock_dirty = False
            offsets.update(part.offsets)
            part.offsets = {}
        self._last_flush = time.monotonic()
        return Snapshot(changed, meta, clocks, offsets, deliveries, customers=tombstones, erased=erased,
                        replaying=replaying)

    def encode(self, snap: Snapshot, start: int = 0, stop: int | None = None) -> None:
        """The snapshot's changed customers ``start:stop``, encoded for the changelog, store and Redis."""
        encode_changed(snap.changed[start:stop], self.encoder,
                       policy=self.policy, keep=self.settings.story_changes, customers=snap.customers,
                       projected=snap.projected)

    async def write(self, snap: Snapshot) -> None:
        """A snapshot made durable, in order: its changes acknowledged, Redis, changelog + store, commit. Its customers
        are encoded meanwhile, and each chunk of Redis rows is written while the next is encoded (``_project``)."""
        started = time.monotonic()
        spent = dict.fromkeys(FLUSH_STAGES, 0.0)  # seconds in each stage (encoding overlaps Redis: not wall time)
        await self._project(snap, spent)  # 1.-3.
        mark = time.monotonic()
        self.stage = ("changelog", mark)
        if self.failpoints:
            self.failpoints.hit("before-persist")
        await persist(await self._producer(), self.customers, snap.customers)  # 4. + 5.
        await self.persist_meta({number: orjson.dumps(doc) for number, doc in snap.meta.items()})
        spent["changelog"], mark = time.monotonic() - mark, time.monotonic()
        self.stage = ("commit", mark)
        if self.failpoints:
            self.failpoints.hit("before-commit")
        if snap.offsets and not await faust_compat.commit(self.app, snap.offsets):  # 6.
            self.stats["commits_refused"] += 1
            log.warning("the commit of %d input offsets was refused (a rebalance?); the next flush commits past them",
                        len(snap.offsets))
        ended = time.monotonic()
        spent["commit"] = ended - mark
        stats = self.stats
        stats["flushes"] += 1
        for stage in FLUSH_STAGES:
            stats[f"flush_ms_{stage}"] += round(spent[stage] * 1000)  # where flushes spend their time, summed
        stats["stored"] += sum(len(w) for w in snap.customers.values())
        took = ended - started
        if self.metrics is not None:
            self.metrics.flush.observe(took)
        (log.warning if took >= SLOW_FLUSH_S else log.debug)(
            "flush: %d customers, %d offsets in %.2fs (encode %.2f, changes acked %.2f, redis %.2f, changelog "
            "%.2f, commit %.2f)", len(snap.projected), len(snap.offsets), took, *(spent[s] for s in FLUSH_STAGES))
        self.evict()

    async def _project(self, snap: Snapshot, spent: dict[str, float]) -> None:
        """1.-3.: the changed customers encoded ``ENCODE_STEP`` at a time (a big flush is no pause); from the first
        chunk on, once the snapshot's changes are acknowledged, each ``CHUNK`` of Redis rows is written while the next
        is encoded (one write in flight, in order; the partitions' clocks and projected marks with the last), so the
        worker's encoding and Redis' work overlap. ``spent``: the seconds encoding, waiting for the acknowledgements
        and waiting for Redis."""
        total = len(snap.changed)
        starts = list(range(0, total, CHUNK)) or [0]  # a flush of no customer still writes its clocks
        writing: asyncio.Task[Written] | None = None
        written = Written()
        try:
            for k, start in enumerate(starts):
                stop = min(start + CHUNK, total)
                self.stage = ("encode", time.monotonic())
                for at in range(start, stop, ENCODE_STEP):
                    mark = time.monotonic()
                    self.encode(snap, at, min(at + ENCODE_STEP, stop))
                    spent["encode"] += time.monotonic() - mark
                    await asyncio.sleep(0)
                mark = time.monotonic()
                if k == 0:
                    self.stage = ("segment changes acknowledged", mark)
                    if snap.deliveries:  # 2. changes and dead letters are out before anything of them is in Redis
                        self.changes_out(snap, await asyncio.gather(*(d.future for d in snap.deliveries)))
                    spent["acked"], mark = time.monotonic() - mark, time.monotonic()
                    self.stage = ("redis", mark)
                    await self._before_rows(snap)
                if writing is not None:
                    self.stage = ("redis", mark)
                    written.add(await writing)
                last = k == len(starts) - 1
                writing = asyncio.create_task(self.projection.write_many(  # 3.
                    snap.projected[start:stop], snap.clocks if last else None, sorted(self.parts) if last else ()))
                spent["redis"] += time.monotonic() - mark
            mark = time.monotonic()
            self.stage = ("redis", mark)
            if writing is not None:
                written.add(await writing)
                writing = None
            await self._after_rows(snap, written)
            spent["redis"] += time.monotonic() - mark
        finally:
            if writing is not None and not writing.done():
                writing.cancel()  # the flush failed while encoding: the worker stops, nothing is committed

    def changes_out(self, snap: Snapshot, results: Sequence[Any]) -> None:
        """The snapshot's changes are acknowledged: its partitions' meta (saved with this flush) records where the
        segment-change topic stands, so that a restart knows what was published past the saved state
        (``streams.worker.recovery``)."""
        ends: dict[int, int] = {}
        for delivery, result in zip(snap.deliveries, results, strict=True):
            # a partition still replaying keeps its record where it was: a stop now must find those changes again
            if delivery.partition is not None and delivery.partition not in snap.replaying:
                ends[delivery.partition] = max(ends.get(delivery.partition, 0), result.offset + delivery.records)
        for number, end in ends.items():
            doc = snap.meta.get(number)
            if doc is None:
                continue  # not held at the snapshot (cannot happen: a revocation flushes first)
            doc["changes_end"] = end
            part = self.parts.get(number)
            if part is not None and part.epoch == doc["epoch"]:
                part.changes_end = end

    async def _before_rows(self, snap: Snapshot) -> None:
        """Before the snapshot's rows: the customers it erased leave Redis, and the quarantine is known."""
        if snap.erased:
            await self.projection.erase(snap.erased)
        if self._quarantined is None:
            self._quarantined = await self.projection.quarantined()

    async def _after_rows(self, snap: Snapshot, written: Written) -> None:
        """After the snapshot's rows (written in one round trip per chunk; rows Redis refuses for good are
        quarantined, the rest written): earlier quarantined ones released. A partition Redis holds nothing of (it
        restarted empty) is then projected whole from the store (rows older than this flush's do not apply over
        them)."""
        erased = set(snap.erased)  # tombstoned in the store only at 4.
        for number in written.unprojected:
            await self._reproject(number, skip=erased)
        refused = {c.customer_id for c, _ in written.quarantined}
        self.stats["quarantined"] += len(refused)
        if self._quarantined:
            released = [c.customer_id for c in snap.projected
                        if c.customer_id in self._quarantined and c.customer_id not in refused]
            await self.projection.release(released)
            self._quarantined.difference_update(released)
        self._quarantined = (self._quarantined or set()) | refused

    async def _reproject(self, number: int, skip: Collection[str] = ()) -> None:
        """Every customer the store holds for partition ``number`` but those in ``skip``, into Redis (in the flush
        task: nothing writes the store meanwhile). Newer rows already there, or written by later flushes, win by
        seq."""
        part = self.parts.get(number)
        if part is None:
            return
        started, count, day, rows = time.monotonic(), 0, part.day, []
        policy = self.policy
        for key, value in faust_compat.stored_items(self.customers, number):
            customer = key.decode()
            if customer in skip:
                continue
            rows.append(projected_row(customer, unpack(value), value, number=number, epoch=part.epoch, day=day,
                                      policy=policy))
            if len(rows) >= ENCODE_STEP * 8:
                count += len(rows)
                await self.projection.write_many(rows)
                rows = []
        count += len(rows)
        clocks = {number: (part.stream_time.isoformat(), day)} if part.stream_time and day is not None else None
        await self.projection.write_many(rows, clocks)
        await self.projection.mark_projected(number, part.epoch)
        if count:
            log.warning("partition %d: redis held none of it (restarted empty?); projected its %d stored customers "
                        "again in %.1fs", number, count, time.monotonic() - started)

    async def persist_meta(self, values: Mapping[int, bytes]) -> None:
        """Partition metadata records, through the meta table's changelog into its store."""
        groups: dict[int, list[tuple[bytes, bytes | None]]] = {
            p: [(f"p{p}".encode(), value)] for p, value in values.items()}
        await persist(await self._producer(), self.meta, groups)

    def evict(self) -> None:
        """Keep at most ``state_cache_customers`` decoded records, dropping each partition's least recently
        changed ones (``_put`` moves a changed customer to the end); persisted ones are read back when needed."""
        total = sum(len(p.records) for p in self.parts.values())
        excess = total - self.settings.state_cache_customers
        if excess <= 0:
            return
        for part in self.parts.values():
            records, dirty = part.records, part.dirty
            share = -(-excess * len(records) // total)  # this partition's part of the excess, rounded up
            dropped = list(itertools.islice((c for c in records if c not in dirty), share))
            forget = self.encoder.forget  # its memo would keep the dropped states' buckets in memory
            for customer in dropped:
                del records[customer]
                forget(customer)
            self.stats["evicted"] += len(dropped)

