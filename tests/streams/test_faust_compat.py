"""Fails loudly when a faust upgrade moves what streams/kafka/faust_compat.py relies on."""

import inspect
from types import SimpleNamespace

import faust
import rocksdict
from faust import stores
from faust import streams as faust_streams
from faust.stores import rocksdb as rocksdb_store
from faust.tables import recovery
from faust.transport import drivers
from faust.transport.drivers import aiokafka as driver

from streams.kafka import faust_compat
from streams.settings import Settings
from streams.worker.app import create_app


def test_faust_version_is_the_one_we_checked():
    assert faust.__version__ == "0.15.3", "re-check streams/kafka/faust_compat.py against this faust release"


def test_aiokafka_version_is_the_one_we_checked():
    import aiokafka  # noqa: PLC0415

    assert aiokafka.__version__ == "0.14.0", "re-check streams/kafka/faust_compat.py against this aiokafka release"


def test_the_aiokafka_private_attributes_we_set_are_still_read_where_we_expect():
    from aiokafka.consumer import fetcher  # noqa: PLC0415

    # faust_compat sets consumer._fetch_max_wait_ms before start() builds the fetcher from it ...
    start = inspect.getsource(__import__("aiokafka").AIOKafkaConsumer.start)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start
    # ... and the fetcher's _prefetch_backoff, which its constructor sets and its fetch loop reads
    assert "self._prefetch_backoff = prefetch_backoff" in inspect.getsource(fetcher.Fetcher.__init__)


def test_the_consumer_thread_still_has_the_hooks_we_override():
    assert "_highwaters" in vars(driver.AIOKafkaConsumerThread)
    assert "_new_consumer_thread" in vars(driver.Consumer)
    assert list(inspect.signature(driver.AIOKafkaConsumerThread._highwaters).parameters) == ["self", "partitions"]


def test_the_worker_consumer_is_still_built_by_the_hook_we_wrap():
    source = inspect.getsource(driver.AIOKafkaConsumerThread._create_worker_consumer)
    assert "fetch_max_wait_ms=1500" in source
    assert "_fetch_max_wait_ms" in inspect.getsource(__import__("aiokafka").AIOKafkaConsumer.start)


def test_the_fetcher_still_waits_out_its_prefetch_backoff_on_unconsumed_partitions():
    # ConsumerThread.on_start sets this to 0: the consumer thread starts the aiokafka consumer in
    # on_start, whose fetcher holds back a broker's fetches while a partition's records wait
    from aiokafka.consumer import fetcher  # noqa: PLC0415

    assert "self._consumer.start()" in inspect.getsource(driver.AIOKafkaConsumerThread.on_start)
    assert "backoff=self._prefetch_backoff" in inspect.getsource(fetcher.Fetcher._proc_fetch_request)
    assert "backoff_by_nodes" in inspect.getsource(fetcher.Fetcher._get_actions_per_node)


def test_recovery_still_asks_the_consumer_for_highwaters():
    assert "consumer.highwaters(" in inspect.getsource(recovery.Recovery._build_highwaters)


def test_our_scheme_resolves_to_our_transport():
    scheme = faust_compat.register()
    assert drivers.by_url(f"{scheme}://127.0.0.1:9092") is faust_compat.Transport
    assert faust_compat.Transport.Consumer is faust_compat.Consumer


def test_worker_tables_store_and_log_our_bytes_untouched(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1"))
    for table in app.tables.values():
        assert (table.key_serializer, table.value_serializer) == ("raw", "raw")
        assert table.changelog_topic.value_serializer == "raw"


def test_the_fetch_loop_still_goes_through_the_hook_that_diverts_input_batches():
    base = faust.transport.consumer.Consumer
    assert "_wait_next_records" in vars(base)
    assert "records, active_partitions = await self._wait_next_records(timeout)" in inspect.getsource(base.getmany)
    assert list(inspect.signature(base._wait_next_records).parameters) == ["self", "timeout"]
    assert "flow_active" in vars(base) or "flow_active" in inspect.getsource(base.__init__)
    # what Engine.take is told to re-check under its lock
    assert "_get_active_partitions" in vars(base)
    assert "consumer_generation_id" in inspect.getsource(base.getmany)


def test_offsets_commit_through_the_driver_commit_we_call():
    # faust_compat.commit calls Consumer._commit: the thread delegate hands it to the consumer thread,
    # whose _commit returns False (no crash) when a rebalance already took the partitions
    assert list(inspect.signature(driver.Consumer._commit).parameters) == ["self", "offsets"]
    assert "_thread.commit(" in inspect.getsource(driver.Consumer._commit)
    assert "CommitFailedError" in inspect.getsource(driver.AIOKafkaConsumerThread._commit)


def test_the_rocksdb_store_still_has_the_per_partition_accessors_we_use():
    from faust.stores import rocksdb  # noqa: PLC0415

    store = rocksdb.Store
    for name in ("_db_for_partition", "_visible_items", "set_persisted_offset", "persisted_offset"):
        assert name in vars(store), name
    assert list(inspect.signature(store._db_for_partition).parameters) == ["self", "partition"]
    assert "offset_key" in inspect.getsource(store._visible_items)


def test_the_verify_event_path_hook_still_exists():
    assert "verify_event_path" in vars(driver.AIOKafkaConsumerThread)


def test_the_worker_installs_its_fast_path(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1"))
    fast = faust_compat.FAST_PATHS[app]
    assert fast.topics == {"segmenter.transactions", "segmenter.interactions", "segmenter.profiles",
                           "segmenter.overrides", "segmenter.tags",
                           "segmenter.control"}


def test_our_store_scheme_resolves_to_the_compressed_rocksdb_store(tmp_path):
    faust_compat.register()
    assert stores.by_url(f"{faust_compat.STORE_SCHEME}://") is faust_compat.Store
    assert issubclass(faust_compat.Store, rocksdb_store.Store)
    # the attributes our table factory copies from faust's
    for name in ("bloom_filter_size", "block_cache_size", "use_rocksdict"):
        assert hasattr(rocksdb_store.RocksDBOptions(), name)
    # and what it is for: the same records take less room than with faust's own options
    sizes = {}
    theirs, ours = rocksdb_store.RocksDBOptions(), faust_compat.CompressedRocksDBOptions()
    for label, options in (("faust", theirs), ("ours", ours), ("snappy", ours)):
        faust_compat.register(compression="snappy" if label == "snappy" else "zstd")  # SEGMENTER_STORE_COMPRESSION
        path = tmp_path / label
        db = options.open(path)
        for i in range(20_000):
            tail = b"retail-value@1\x01value\nhigh_value"
            db[f"C{i:07d}".encode()] = b"\x02\x1a" + bytes(i % 251 for _ in range(40)) + tail
        db.flush()
        db.compact_range(None, None)
        db.close()
        sizes[label] = sum(f.stat().st_size for f in path.rglob("*.sst"))
    faust_compat.register()
    assert 0 < sizes["ours"] < sizes["faust"] * 0.9, sizes
    assert abs(sizes["snappy"] - sizes["faust"]) < sizes["faust"] * 0.02, sizes  # snappy: faust's own options


def test_recovery_still_keeps_what_the_batched_changelog_path_moves():
    """recover_batches writes changelog batches itself and moves what faust's own loop would move."""
    slurp = inspect.getsource(recovery.Recovery._slurp_changelogs.fun)
    for name in ("active_offsets", "standby_offsets", "tp_to_table", "buffers"):
        assert f"self.{name}" in slurp
    assert "offsets[tp] = offset" in slurp  # the last applied offset, as recover_batches sets it
    assert "self.flush_buffers()" in slurp
    assert "self._set_recovery_ended()" in slurp
    assert "self.signal_recovery_end.set()" in slurp
    assert "self._recovery_started_at = monotonic()" in inspect.getsource(recovery.Recovery._set_recovery_started)
    assert "value - 1" in inspect.getsource(recovery.Recovery._build_highwaters)  # highwaters: last offsets
    apply = inspect.getsource(rocksdb_store.Store.apply_changelog_batch)
    assert "batches[msg.partition].put(msg.key, msg.value)" in apply  # raw bytes, as recover_batches writes
    assert "self.set_persisted_offset(tp, offset)" in apply


def test_a_static_member_id_reaches_the_consumer_and_rocksdb_memory_is_shared(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", instance_id="worker-0"))
    assert app.conf.consumer_group_instance_id == "worker-0"
    assert "group_instance_id=conf.consumer_group_instance_id" in inspect.getsource(
        driver.AIOKafkaConsumerThread._create_worker_consumer)
    cache, writes = faust_compat.shared_memory()
    before = writes.get_usage()
    stores = [rocksdict.Rdict(str(tmp_path / f"db{i}"), faust_compat.CompressedRocksDBOptions(
        use_rocksdict=True).as_options()) for i in range(2)]
    for i, store in enumerate(stores):
        store[b"k%d" % i] = b"v" * 100_000
    assert writes.get_usage() > before  # both stores' memtables are charged to the one manager
    for store in stores:
        store.close()
    assert faust_compat.shared_memory() == (cache, writes)
    assert writes.get_buffer_size() == faust_compat.ROCKSDB_MEMORY // 2
    assert create_app(Settings(data_dir=tmp_path / "b", kafka_bootstrap="127.0.0.1:1")).conf \
        .consumer_group_instance_id is None


def test_tables_still_take_their_partition_from_the_current_event_that_handling_sets():
    record = SimpleNamespace(topic="t", partition=5)
    with faust_compat.handling(record):
        event = faust_streams.current_event()
        assert event is not None
        assert event.message is record
    assert faust_streams.current_event() is None


def test_the_fetch_loop_still_builds_each_request_with_the_wait_we_move_and_calls_the_hook_we_wrap():
    from aiokafka.consumer import fetcher  # noqa: PLC0415

    # IdleFetches replaces the fetcher's _proc_fetch_request, called through self for every fetch ...
    assert "self._proc_fetch_request(" in inspect.getsource(fetcher.Fetcher._fetch_requests_routine)
    # ... and sets _fetch_max_wait_ms, read as each FetchRequest is built
    assert "self._fetch_max_wait_ms," in inspect.getsource(fetcher.Fetcher._get_actions_per_node)


def _fetcher(results: list[bool]) -> SimpleNamespace:
    async def proc(assignment, node_id, request):
        return results.pop(0)

    return SimpleNamespace(_fetch_max_wait_ms=10, _proc_fetch_request=proc)


async def test_fetches_wait_longer_after_a_run_of_empty_ones_and_shorter_from_the_first_that_brings_records():
    fetcher = _fetcher([False] * 4 + [True] + [False] * 5 + [False, True])
    faust_compat.IdleFetches(fetcher, busy_ms=10, idle_ms=100, after=5)
    waits = []
    for _ in range(12):
        await fetcher._proc_fetch_request(None, 0, None)
        waits.append(fetcher._fetch_max_wait_ms)
    # four empty then one with records: still busy; five empty: idle (and stays); one with records: busy at once
    assert waits == [10] * 9 + [100, 100, 10]


async def test_an_idle_wait_below_the_busy_one_never_shortens_the_fetches():
    fetcher = _fetcher([False] * 6)
    faust_compat.IdleFetches(fetcher, busy_ms=10, idle_ms=5, after=5)
    for _ in range(6):
        await fetcher._proc_fetch_request(None, 0, None)
    assert fetcher._fetch_max_wait_ms == 10


def _real_store(tmp_path, values):
    """A table whose partition 0 is a real RocksDB store (faust's options) holding ``values`` and faust's offset."""
    db = rocksdict.Rdict(str(tmp_path / "p0"), options=faust_compat.CompressedRocksDBOptions(
        use_rocksdict=True).as_options())
    faust_compat.store_write(SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda p: db)), 0,
                             [*values.items(), (rocksdb_store.Store.offset_key, b"42")])
    data = SimpleNamespace(_db_for_partition=lambda p: db, offset_key=rocksdb_store.Store.offset_key,
                           _visible_items=lambda d: rocksdb_store.Store._visible_items(data, d), use_rocksdict=True)
    return SimpleNamespace(data=data)


def test_a_run_of_stored_values_is_read_in_one_pass_and_stops_short_of_strangers(tmp_path, monkeypatch):
    values = {f"c{i:04d}".encode(): f"v{i}".encode() for i in range(0, 2000, 2)}  # even ids stored
    table = _real_store(tmp_path, values)
    assert set(faust_compat.stored_keys(table, 0)) == set(values)  # the offset key left out
    asked = [f"c{i:04d}".encode() for i in range(100, 140)]  # odd ones are not stored
    assert faust_compat.stored_run(table, 0, asked) == {k: values[k] for k in asked if k in values}
    assert faust_compat.stored_run(table, 0, []) == {}
    assert faust_compat.stored_run(table, 0, [b"zzz"]) == {}  # past the store's end
    # keys asked for far apart: the pass gives up after RUN_SLACK per key and reads the rest one by one
    monkeypatch.setattr(faust_compat, "RUN_SLACK", 1)
    spread = [b"c0000", b"c0002", b"c1000", b"c1998", b"c1999"]
    assert faust_compat.stored_run(table, 0, spread) == {k: values[k] for k in spread if k in values}


def test_a_run_of_stored_values_from_an_in_memory_stand_in():
    db = {b"a": b"1", b"c": b"3"}
    table = SimpleNamespace(data=SimpleNamespace(_db_for_partition=lambda p: db,
                                                 _visible_items=lambda d: list(d.items())))
    assert faust_compat.stored_run(table, 0, [b"a", b"b", b"c"]) == {b"a": b"1", b"c": b"3"}
    assert list(faust_compat.stored_keys(table, 0)) == [b"a", b"c"]
