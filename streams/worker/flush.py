"""The engine's flushes: snapshot, then changes acknowledged, Redis, changelog + store, commit (the steps and
why they are safe are told in ``streams.worker.engine``'s docstring). ``Flushing`` is a part of ``Engine``: it uses
the engine's partitions, tables, producer and counters."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from segmenter import step
from segmenter.codec import StateEncoder
from segmenter.state import Policy, totals_at
from streams.failpoints import Failpoints
from streams.kafka import faust_compat
from streams.readmodel.writer import ProjectedCustomer, Projection
from streams.settings import Settings
from streams.stored import pack, unpack
from streams.worker.collector import Collector
from streams.worker.metrics import WorkerMetrics
from streams.worker.partition import History, Move, Partition
from streams.worker.persist import Delivery, Snapshot, persist

log = logging.getLogger("segmenter.worker")
SLOW_FLUSH_S = 2.0  # a flush that took longer is logged with where its time went
STUCK_FLUSH_S = 30.0  # a flush in flight this long at one stage is logged (again every 30 s)
FLUSH_STAGES = ("encode", "acked", "redis", "changelog", "commit")  # the counters flush_ms_<stage>
ENCODE_STEP = 256  # customers encoded between two looks at the event loop (a few ms)


def projected_row(customer: str, record: step.CustomerRecord, value: bytes, *, number: int, epoch: int,
                  day: int | None, policy: Policy, history: Sequence[tuple[str, str, Move | None]] = (),
                  keep: int = 0) -> ProjectedCustomer:
    """A customer's Redis row: its stored ``value``, segments, amount_12m and purchases_12m as of its partition's
    ``day``, its last ``keep`` changes since the last flush (for its story's list) and its segment moves (for the
    day summary)."""
    long = totals_at(record.state, day, policy).long if day is not None else (0, 0)
    story = tuple((i, entry) for i, entry, _ in history[-keep:]) if keep else ()
    moves = tuple((i, *move) for i, _, move in history if move is not None)
    return ProjectedCustomer(customer, epoch, record.seq, dict(record.segments), long[1], number, value, record.tags,
                             story, moves, long[0])


class Flushing:
    """The flush half of ``Engine`` (these attributes, and ``_producer_started`` and ``_send_outputs``, are
    the engine's)."""

    app: Any
    settings: Settings
    policy: Policy
    parts: dict[int, Partition]
    stats: Counter[str]
    customers: Any
    meta: Any
    projection: Projection
    encoder: StateEncoder
    collector: Collector
    _failpoints: Failpoints
    _flushing: asyncio.Task[None] | None
    _deliveries: list[Delivery]
    _dirty_count: int
    _last_flush: float
    _quarantined: set[str] | None
    _stage: tuple[str, float]
    metrics: WorkerMetrics | None

    async def _producer_started(self) -> AIOKafkaProducer:
        raise NotImplementedError  # the engine's

    async def _send_outputs(self) -> None:
        raise NotImplementedError  # the engine's

    async def _backpressure(self) -> None:
        """With a flush in flight and the next one already due, wait for it: what a kill can lose (applied,
        not committed) stays within about two flushes, and flushes stay their configured size instead of
        growing with everything processed while the one before was writing."""
        flushing = self._flushing
        if flushing is not None and not flushing.done() and self._dirty_count >= self.settings.flush_max_dirty:
            self.stats["flush_waits"] += 1
            t0 = time.monotonic()
            await asyncio.shield(flushing)
            self.stats["flush_wait_ms"] += round((time.monotonic() - t0) * 1000)

    async def _start_flush(self) -> None:
        """Under the lock: snapshot now, do the I/O in the background (one flush in flight)."""
        if self._flushing is not None:
            if not self._flushing.done():
                return  # the next batch tries again
            self._flushing.result()  # a failed flush crashes the worker here
        self._flushing = asyncio.create_task(self._write(self._snapshot()), name="segmenter.flush")
        self.collector.freeze()

    async def _flush_now(self) -> None:
        """Under the lock: wait for the flush in flight, then flush everything left."""
        if self._flushing is not None:
            await self._flushing
            self._flushing = None
        await self._send_outputs()
        await self._write(self._snapshot())

    def _snapshot(self) -> Snapshot:
        changed: list[tuple[int, int, int | None, str, step.CustomerRecord, History]] = []
        erased: list[str] = []
        tombstones: dict[int, list[tuple[bytes, bytes | None]]] = {}
        meta: dict[int, dict[str, Any]] = {}
        clocks: dict[int, tuple[str, int]] = {}
        offsets: dict[Any, int] = {}
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
        self._dirty_count = 0
        self._last_flush = time.monotonic()
        return Snapshot(changed, meta, clocks, offsets, deliveries, customers=tombstones, erased=erased,
                        replaying=replaying)

    def _encode(self, snap: Snapshot, start: int, stop: int) -> None:
        """The snapshot's changed customers ``start:stop``, encoded for the changelog, store and Redis."""
        policy, encoder, customers, projected = self.policy, self.encoder, snap.customers, snap.projected
        keep = self.settings.story_changes
        for number, epoch, day, customer, record, history in snap.changed[start:stop]:
            value = pack(number, record, encoder.dumps(customer, record.state))
            customers.setdefault(number, []).append((customer.encode(), value))
            projected.append(projected_row(customer, record, value, number=number, epoch=epoch, day=day, policy=policy,
                                           history=history, keep=keep))

    async def _write(self, snap: Snapshot) -> None:
        marks = [time.monotonic()]
        self._stage = ("encode", marks[0])
        for start in range(0, len(snap.changed), ENCODE_STEP):  # 1. encoded in slices: a big flush is no pause
            self._encode(snap, start, start + ENCODE_STEP)
            await asyncio.sleep(0)
        marks.append(time.monotonic())
        self._stage = ("segment changes acknowledged", marks[-1])
        if snap.deliveries:  # 2. changes and dead letters are out
            self._changes_out(snap, await asyncio.gather(*(d.future for d in snap.deliveries)))
        marks.append(time.monotonic())
        self._stage = ("redis", marks[-1])
        await self._project(snap)  # 3. Redis
        marks.append(time.monotonic())
        self._stage = ("changelog", marks[-1])
        if self._failpoints:
            self._failpoints.hit("before-persist")
        await persist(await self._producer_started(), self.customers, snap.customers)  # 4. + 5.
        await self._persist_meta({number: orjson.dumps(doc) for number, doc in snap.meta.items()})
        marks.append(time.monotonic())
        self._stage = ("commit", marks[-1])
        if self._failpoints:
            self._failpoints.hit("before-commit")
        if snap.offsets and not await faust_compat.commit(self.app, snap.offsets):  # 6.
            self.stats["commits_refused"] += 1
            log.warning("the commit of %d input offsets was refused (a rebalance?); the next flush commits past them",
                        len(snap.offsets))
        marks.append(time.monotonic())
        stats = self.stats
        stats["flushes"] += 1
        for stage, (a, b) in zip(FLUSH_STAGES, itertools.pairwise(marks), strict=True):
            stats[f"flush_ms_{stage}"] += round((b - a) * 1000)  # where flushes spend their time, summed
        stats["stored"] += sum(len(w) for w in snap.customers.values())
        took = marks[-1] - marks[0]
        if self.metrics is not None:
            self.metrics.flush.observe(took)
        (log.warning if took >= SLOW_FLUSH_S else log.debug)(
            "flush: %d customers, %d offsets in %.2fs (encode %.2f, changes acked %.2f, redis %.2f, changelog "
            "%.2f, commit %.2f)", len(snap.projected), len(snap.offsets), took,
            *(b - a for a, b in itertools.pairwise(marks)))
        self._evict()

    def _changes_out(self, snap: Snapshot, results: Sequence[Any]) -> None:
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

    async def _project(self, snap: Snapshot) -> None:
        """Redis, in one round trip as a rule; rows it refuses for good are quarantined (the rest written), earlier
        ones released. A partition Redis holds nothing of (it restarted empty) is then projected whole from the store
        (rows older than this flush's do not apply over them)."""
        if snap.erased:
            await self.projection.erase(snap.erased)
        if self._quarantined is None:
            self._quarantined = await self.projection.quarantined()
        written = await self.projection.write_many(snap.projected, snap.clocks, sorted(self.parts))
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
        self._quarantined |= refused

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

    async def _persist_meta(self, values: Mapping[int, bytes]) -> None:
        groups: dict[int, list[tuple[bytes, bytes | None]]] = {
            p: [(f"p{p}".encode(), value)] for p, value in values.items()}
        await persist(await self._producer_started(), self.meta, groups)

    def _evict(self) -> None:
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
