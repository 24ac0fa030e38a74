"""Every use of a faust internal, in one place (tests/streams/test_faust_compat.py pins them).

faust's table recovery reads each changelog partition up to the end that ``end_offsets()``
(ListOffsets) reports. Some Kafka-protocol brokers report the base offset of the last record batch
there, so recovery would silently skip the last batch of writes. This transport's consumer takes a
partition's end from a fetch instead — on Apache Kafka both agree, so it is safe everywhere.

faust also hard-codes the consumer's ``fetch_max_wait_ms`` to 1500 ms; a broker that holds a fetch
that long before answering adds that much latency to every event. ``FETCH_MAX_WAIT_MS`` sets it; once a few
fetches in a row brought nothing, fetches wait up to ``FETCH_IDLE_WAIT_MS`` instead (``IdleFetches``), until one
brings a record.
The consumer's fetcher also gets no prefetch backoff (see ``ConsumerThread.on_start``).

The data plane (``streams.worker.engine``) takes the input topics off faust's per-event path: this
consumer hands every fetched batch of those topics to the engine before faust's stream machinery
sees it, and the engine commits their offsets itself after its own flush. It reads and writes the
tables' RocksDB stores per partition directly (faust's own accessors need a "current event").

It is registered as the broker URL scheme ``segmenter-kafka://``.

The table store ``segmenter-rocksdb://`` is faust's RocksDB store with zstd-compressed 16 KiB blocks
(faust leaves RocksDB's default, Snappy on 4 KiB blocks). Measured on 185,183 customer records of
``bench.core``'s population: 108.2 bytes per customer on disk with faust's default, 107.1 with LZ4,
98.2 with zstd, 92.5 with zstd on 16 KiB blocks. Stores written before keep working: RocksDB records
the compression per block.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, cast

import rocksdict
from aiokafka import AIOKafkaConsumer
from faust import stores
from faust import streams as faust_streams
from faust.stores import rocksdb as rocksdb_store
from faust.transport import drivers
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from streams.kafka.fetched import Batch, Current
from streams.kafka.reading import fetched_ends
from streams.settings import Settings

SCHEME = "segmenter-kafka"
STORE_SCHEME = "segmenter-rocksdb"
BLOCK_SIZE = 16 * 1024
# Set by ``register`` from the worker's settings before the app starts (faust builds these classes itself, so they
# cannot take them as arguments); the defaults are the settings' own.
FETCH_MAX_WAIT_MS = {"value": int(Settings.model_fields["fetch_max_wait_ms"].default)}
FETCH_IDLE_WAIT_MS = {"value": int(Settings.model_fields["fetch_idle_wait_ms"].default)}
COMPRESSION = {"value": str(Settings.model_fields["store_compression"].default)}  # zstd, or snappy for RocksDB's


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS["value"]  # read by start() when it builds the fetcher
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # aiokafka sends no fetch to a broker while any partition holds fetched records nobody has
        # consumed yet, for up to this backoff (0.1 s). faust leaves the tables' changelog partitions
        # assigned and unpaused but never consumes them outside recovery, so every cycle waited the
        # full backoff: input records were 0.3-0.8 s old when the engine got them at 4,800 events/s.
        # With no backoff such a partition simply stays out of the next fetches until it is consumed.
        assert self._consumer is not None  # started just above
        self._consumer._fetcher._prefetch_backoff = 0.0
        IdleFetches(self._consumer._fetcher, FETCH_MAX_WAIT_MS["value"], FETCH_IDLE_WAIT_MS["value"])

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        listed = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return listed
        conf = self.app.conf
        options = {"bootstrap_servers": ",".join(f"{u.host}:{u.port or 9092}" for u in conf.broker),
                   **driver.credentials_to_aiokafka_auth(conf.broker_credentials)}
        return await fetched_ends(options, list(partitions), listed)

    def verify_event_path(self, now: float, tp: Any) -> None:
        fast = FAST_PATHS.get(self.app)
        if fast is not None and tp.topic in fast.topics:
            return  # no faust stream reads these: its "stream idle" check does not apply
        super().verify_event_path(now, tp)


class IdleFetches:
    """The fetcher's longest wait, ``busy_ms`` while fetches bring records and ``idle_ms`` once ``after`` in a row
    brought none, back to ``busy_ms`` with the first that brings one (installed over ``fetcher``'s
    ``_proc_fetch_request``, which its fetch loop calls for every fetch; the wait is read as each request is built).

    The embedded broker answers a fetch over several partitions only when its wait ends or soon after data arrives,
    so the worker fetches with a short wait (``fetch_max_wait_ms``, 10 ms): while no data comes, that is a hundred
    fetches a second. Measured on the embedded stack with 8 partitions (2026-12-07, an idle worker for 10 s, twice
    each): with this at 100 ms, the worker took 2 % of a core and the broker 5-6 %, against 10-12 % and 19-20 %
    without it (``SEGMENTER_FETCH_IDLE_WAIT_MS=10``). During a rules change (the input idle while the worker
    re-evaluates) the broker's share went from 21-24 % to 13-15 %: over 300,000 customers the change was no faster
    (26.4 and 24.3 s against 25.4 and 24.1 s), over 1,000,000 it was (68.9, 80.9 and 89.6 s in three hours against
    101.6 s; docs/throughput.md). The price is the first record after an idle spell: a scratch consumer of 8
    partitions, sent one record at a time, got each 15 ms after it was sent at the median with a fixed 100 ms wait,
    5-7 ms with 10 ms. On Apache Kafka a waiting fetch is answered as soon as data arrives,
    so the longer wait costs nothing there."""

    def __init__(self, fetcher: Any, busy_ms: int, idle_ms: int, after: int = 5) -> None:
        self.fetcher, self.busy_ms, self.idle_ms, self.after = fetcher, busy_ms, max(idle_ms, busy_ms), after
        self.empty = 0  # fetches in a row that brought nothing
        self._fetch = fetcher._proc_fetch_request
        fetcher._proc_fetch_request = self.fetch

    async def fetch(self, assignment: Any, node_id: int, request: Any) -> bool:
        brought = bool(await self._fetch(assignment, node_id, request))  # records (or an error) for the consumer
        self.seen(brought)
        return brought

    def seen(self, brought: bool) -> None:
        if brought:
            self.empty = 0
            self.fetcher._fetch_max_wait_ms = self.busy_ms
            return
        self.empty += 1
        if self.empty == self.after:
            self.fetcher._fetch_max_wait_ms = self.idle_ms


class FastPath(Protocol):
    topics: frozenset[str]

    def take(self, batch: Batch, current: Current) -> Awaitable[None]: ...


FAST_PATHS: weakref.WeakKeyDictionary[Any, FastPath] = weakref.WeakKeyDictionary()


def install(app: Any, fast: FastPath) -> None:
    """Records of ``fast.topics`` go to ``fast.take`` as whole batches instead of faust's streams."""
    FAST_PATHS[app] = fast


class _Handling:
    """What faust's tables read of the event being handled: its message (topic and partition)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: Any) -> None:
        self.message = message


@contextmanager
def handling(message: Any) -> Iterator[None]:
    """Table reads and writes outside faust's stream iteration (a fast path's), as faust makes them while an agent
    handles ``message`` (a fetched record): its tables take the changelog and store partition from the current
    event (``faust.streams._current_event``)."""
    event = _Handling(message)
    token = faust_streams._current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> tuple[Any, Any]:
        fetched, active = await super()._wait_next_records(timeout)
        records: Mapping[Any, list[Any]] | None = recover_batches(self.app, fetched) if fetched else fetched
        fast = FAST_PATHS.get(self.app)
        if not records or fast is None or not self.flow_active or self.should_stop:
            return records, active  # faust's getmany seeks back when the flow is stopped
        mine = {tp: batch for tp, batch in records.items()
                if tp.topic in fast.topics and batch and (active is None or tp in active)}
        if not mine:
            return records, active
        monitor = self.app.monitor
        for tp in mine:
            monitor.track_tp_end_offset(tp, self.highwater(tp))
        generation = self.app.consumer_generation_id

        def current(tp: Any) -> bool:
            """Still ours, in the same generation: a rebalance may run while a batch waits."""
            return self.app.consumer_generation_id == generation and tp in self._get_active_partitions()

        await fast.take(mine, current)
        return {tp: batch for tp, batch in records.items() if tp not in mine}, active


async def commit(app: Any, offsets: Mapping[Any, int]) -> bool:
    """Commit input offsets the engine has made durable (faust only commits what its streams acked)."""
    return bool(await app.consumer._commit(offsets))


def _db(table: Any, partition: int) -> Any:
    return table.data._db_for_partition(partition)


def stored_get(table: Any, partition: int, key: bytes) -> bytes | None:
    value = _db(table, partition).get(key)
    return None if value is None else bytes(value)


def stored_items(table: Any, partition: int) -> Iterator[tuple[bytes, bytes]]:
    store = table.data
    return iter(store._visible_items(store._db_for_partition(partition)))


def stored_keys(table: Any, partition: int) -> Iterator[bytes]:
    """The partition's stored keys (faust's offset key left out), without copying their values into Python."""
    store = table.data
    db = store._db_for_partition(partition)
    if not isinstance(db, rocksdict.Rdict):  # an in-memory stand-in (tests, benches)
        return (key for key, _ in store._visible_items(db))
    offset_key = store.offset_key
    keys = cast(Iterator[bytes], db.keys())  # raw mode: bytes (the values are not copied into Python)
    return (key for key in keys if key != offset_key)


# A run read in one pass may step over keys not asked for (customers stored since the list was made); past this
# many per key asked for, the rest are read one by one.
RUN_SLACK = 4


def stored_run(table: Any, partition: int, keys: Sequence[bytes]) -> dict[bytes, bytes]:
    """The stored values of ``keys`` (ascending, as RocksDB orders them) that the store holds, read in one pass of
    an iterator from the first: a point read goes through every memtable and level for one value, a pass reads
    each block once for all the keys it holds (``docs/throughput.md``, "A rules change reads its customers in one
    pass")."""
    db = _db(table, partition)
    if not keys:
        return {}
    if not isinstance(db, rocksdict.Rdict):  # an in-memory stand-in (tests, benches): a lookup each
        return {key: bytes(value) for key in keys if (value := db.get(key)) is not None}
    wanted, last = set(keys), keys[-1]
    found: dict[bytes, bytes] = {}
    rest: bytes | None = None  # where the pass stopped short of ``last``
    budget = RUN_SLACK * len(keys) + 16
    it = db.iter()
    it.seek(keys[0])
    while it.valid():
        key = it.key()
        if key > last:
            break
        if not budget:
            rest = key  # not read: it and the keys after it one by one
            break
        if key in wanted:
            found[key] = it.value()
        budget -= 1
        it.next()
    del it
    if rest is not None:
        for key in keys:
            if key >= rest and (value := db.get(key)) is not None:
                found[key] = value
    return found


def store_write(table: Any, partition: int, items: Sequence[tuple[bytes, bytes | None]]) -> None:
    """Values into the store; None deletes the key (an erased customer)."""
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in items:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    _db(table, partition).write(batch)


def set_persisted_offset(table: Any, partition: int, offset: int) -> None:
    """Where faust's recovery resumes reading this table's changelog partition."""
    table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), partition), offset)


RECOVERED: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # recovery -> records written
log = logging.getLogger("segmenter.worker")


def recover_batches(app: Any, records: Mapping[Any, list[Any]]) -> Mapping[Any, list[Any]]:
    """Changelog records of this module's stores, written into RocksDB as whole fetched batches; the rest
    of ``records`` is returned for faust.

    faust's recovery turns every changelog record into an event that goes through a queue one by one
    (an ``asyncio.wait_for`` each): about 11,000 customers/s from an empty data directory. Here a
    fetched batch is one RocksDB write batch. The recovery's offsets and the store's persisted offset
    move exactly as faust's ``apply_changelog_batch`` moves them, and when every active partition has
    reached its end the recovery is told so, as its own loop would after its next (5 s) wait."""
    recovery = app.tables.recovery
    tables = recovery.tp_to_table
    taken = set()

    for tp, batch in records.items():
        table = tables.get(tp)
        if table is None or not batch or not isinstance(table.data, Store):
            continue
        offsets = (recovery.active_offsets if tp in recovery.active_tps else
                   recovery.standby_offsets if tp in recovery.standby_tps else None)
        if offsets is None:
            continue
        seen = offsets.get(tp)
        fresh = [r for r in batch if seen is None or r.offset > seen]
        if fresh:
            write = rocksdict.WriteBatch(raw_mode=True)
            for record in fresh:
                if record.value is None:
                    write.delete(record.key)
                else:
                    write.put(record.key, record.value)
            _db(table, tp.partition).write(write)
            table.data.set_persisted_offset(tp, fresh[-1].offset)
            offsets[tp] = fresh[-1].offset
            RECOVERED[recovery] = RECOVERED.get(recovery, 0) + len(fresh)
        taken.add(tp)
    if not taken:
        return records
    if recovery.in_recovery and not recovery.need_recovery():
        count, started = RECOVERED.pop(recovery, 0), recovery._recovery_started_at
        log.info("recovered %d changelog records in %.2fs", count, time.monotonic() - (started or time.monotonic()))
        recovery.flush_buffers()
        recovery._set_recovery_ended()
        recovery.signal_recovery_end.set()
    return {tp: batch for tp, batch in records.items() if tp not in taken}


class Transport(driver.Transport):
    Consumer = Consumer


# Memory: faust gives every store (one per table partition: 16 for two tables of 8 partitions) 64 MiB
# memtables, three of them, and its own 2 GiB block cache, so a worker's RSS grew with everything it wrote
# (698 MiB after bench.stream's bulk phase of 1,000,000 events). The worker keeps its hot customers decoded in
# Python and RocksDB needs little cache: every store of the process shares one block cache, and the memtables
# of all of them are charged to it through one write-buffer manager, so RocksDB's memory has one bound
# (ROCKSDB_MEMORY) however many partitions a worker holds.
WRITE_BUFFER = 4 << 20
WRITE_BUFFERS = 2
ROCKSDB_MEMORY = 48 << 20
_SHARED: dict[str, Any] = {}


def shared_memory() -> tuple[Any, Any]:
    """The process's one RocksDB block cache and the write-buffer manager that charges memtables to it."""
    if not _SHARED:
        cache = rocksdict.Cache(ROCKSDB_MEMORY)
        _SHARED.update(cache=cache, writes=rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            ROCKSDB_MEMORY // 2, False, cache))
    return _SHARED["cache"], _SHARED["writes"]


class CompressedRocksDBOptions(rocksdb_store.RocksDBOptions):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"write_buffer_size": WRITE_BUFFER, "max_write_buffer_number": WRITE_BUFFERS,
                            **kwargs})

    def as_options(self) -> Any:
        options = super().as_options()
        if not self.use_rocksdict:
            return options
        zstd = COMPRESSION["value"] == "zstd"
        if zstd:
            options.set_compression_type(rocksdict.DBCompressionType.zstd())
            options.set_bottommost_compression_type(rocksdict.DBCompressionType.zstd())
        # faust's table factory again (bloom filter, block cache, binary-search index), bigger blocks with zstd
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        cache, writes = shared_memory()
        options.set_write_buffer_manager(writes)
        table.set_block_cache(cache)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        if zstd:
            table.set_block_size(BLOCK_SIZE)
        options.set_block_based_table_factory(table)
        return options


class Store(rocksdb_store.Store):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rocksdb_options = CompressedRocksDBOptions(**(self.options or {}), use_rocksdict=self.use_rocksdict)


def register(fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS["value"], compression: str = COMPRESSION["value"], *,
             fetch_idle_wait_ms: int = FETCH_IDLE_WAIT_MS["value"]) -> str:
    """Make ``segmenter-kafka://`` resolve to this transport and ``segmenter-rocksdb://`` to this
    store (``compression`` zstd, or snappy for RocksDB's defaults); returns the transport's scheme."""
    FETCH_MAX_WAIT_MS["value"] = fetch_max_wait_ms
    FETCH_IDLE_WAIT_MS["value"] = fetch_idle_wait_ms
    COMPRESSION["value"] = compression
    drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    stores.STORES.aliases.setdefault(STORE_SCHEME, f"{__name__}:Store")
    return SCHEME
