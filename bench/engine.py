"""The worker's CPU path alone: no broker, no Redis.

Each record of bench.stream's input (Pareto-skewed transactions of a year, retail rules, 8
partitions) goes through what ``Engine.take`` does with it: the edge decodes and validates the JSON,
the engine advances the partition's stream clock (waking the customers that are due), applies the
fact, reclassifies, and writes a segment-change document for every change. The state store is empty
at the start (a fresh worker), so every customer is new on its first event, as in the end-to-end bench. Every
``flush_max_dirty`` changed customers it also does the CPU part of a flush: the snapshot (each
changed customer encoded) and the Redis script's arguments; the I/O is left out. What a flush wrote goes
into a dict that stands in for the store, and the engine evicts as after a flush, keeping the worker's
share of decoded customers (``SEGMENTER_STATE_CACHE_CUSTOMERS`` of bench.stream's 200,000), so customers
are read back and decoded as often as in the worker.

``--rules-change`` streams in ``bench.rules_change``'s input instead (``--customers`` customers of one purchase each,
decoded customers kept as its worker keeps of 1,000,000), then applies its version 2 (every customer moves into
``first_timer``) and times the re-evaluation of every customer with the CPU of its flushes, as the worker does after
``rules apply``: µs per customer, the re-evaluation and the flushes apart.

It isolates the Python that the worker spends most of its time in (``py-spy`` on a worker during
``bench.stream`` puts ``Engine.take`` at about 80 %) from the broker and the machine's noise, so
changes to the hot path can be compared. ``--profile`` prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from types import SimpleNamespace
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from bench.rules_change import version_two
from bench.stream import RULES, history, one_each
from segmenter.rules import load_ruleset
from streams import collector
from streams.names import Names
from streams.readmodel.rows import script_args
from streams.settings import Settings
from streams.worker.adoption import REEVALUATE_STEP
from streams.worker.engine import Engine
from streams.worker.partition import Partition

BATCH = 500  # records between two looks at whether a flush is due (the worker looks once a fetched batch)


class _DictStore:
    """Stands in for a table's RocksDB store: empty at the start of a run (a fresh worker), then holding
    what the flushes wrote, which the engine reads back for the customers it evicted."""

    def __init__(self) -> None:
        self.data = self
        self.partitions: dict[int, dict[bytes, bytes]] = {}

    def _db_for_partition(self, partition: int) -> dict[bytes, bytes]:
        return self.partitions.setdefault(partition, {})

    def _visible_items(self, db: dict[bytes, bytes]) -> Any:
        return db.items()


def run(engine: Engine, records: list[Any], partitions: int, topic: str) -> float:
    ruleset = load_ruleset(RULES)
    parts = {number: Partition(number, ruleset=ruleset) for number in range(partitions)}
    decode, ops = engine.edge.decoders[topic], engine._ops
    engine.parts.clear()
    engine.parts.update(parts)  # the flusher holds the engine's dict
    engine.stats.clear()
    store = engine.customers
    store.partitions.clear()
    flush_at = engine.settings.flush_max_dirty
    t0 = time.perf_counter()
    flusher = engine.flusher
    for n, record in enumerate(records):
        part = parts[record.partition]
        op, args = decode(record)
        ops[op](part, *args)
        if len(part.changes) > 1000:
            part.changes = []  # what _send_outputs hands to the producer after each batch
        if not n % BATCH and flusher.dirty() >= flush_at:  # the worker looks once a fetched batch
            _flush_cpu(engine, store)
    return time.perf_counter() - t0


def _flush_cpu(engine: Engine, store: _DictStore) -> None:
    """The CPU part of a flush (see the module's text): the snapshot encoded, the script's arguments, the store
    written, the decoded customers beyond the cache evicted."""
    t1 = time.perf_counter()
    flusher = engine.flusher
    snapshot = flusher.snapshot()
    flusher.encode(snapshot)  # in the worker: in slices, between batches
    script_args(engine.names.redis, snapshot.projected)
    for number, writes in snapshot.customers.items():
        store._db_for_partition(number).update(writes)
    flusher.evict()  # as at the end of a flush: the least recently changed go, read back when needed
    engine.collector.freeze()
    engine.stats["written"] += len(snapshot.projected)
    engine.stats["flush_ns"] += int((time.perf_counter() - t1) * 1e9)


def rules_change(engine: Engine) -> tuple[float, int]:
    """Every partition adopts version 2 and re-evaluates its customers ``REEVALUATE_STEP`` at a time, with a flush's
    CPU whenever one is due, as ``Adoption._reevaluate_all`` does: seconds, and the customers re-evaluated."""
    ruleset = load_ruleset(version_two())
    adoption, store, flusher = engine.adoption, engine.customers, engine.flusher
    _flush_cpu(engine, store)  # what the stream left unflushed: not part of the change
    engine.stats.clear()
    t0 = time.perf_counter()
    total = sum(len(adoption.begin(part, ruleset, "bench")) for part in engine.parts.values())
    pending = list(engine.parts.values())
    while pending:
        for part in pending:
            adoption._reevaluate(part, REEVALUATE_STEP)
            part.changes = []  # what _send_outputs hands to the producer after each step
        pending = [part for part in pending if part.reevaluating is not None]
        if flusher.dirty() >= engine.settings.flush_max_dirty or not pending:
            _flush_cpu(engine, store)
    return time.perf_counter() - t0, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--cache-customers", type=int, default=0, help="decoded customers kept (default: "
                        "SEGMENTER_STATE_CACHE_CUSTOMERS scaled from bench.stream's 200,000 customers to these)")
    parser.add_argument("--runs", type=int, default=3, help="the best of this many runs is reported")
    parser.add_argument("--profile", action="store_true", help="one run under cProfile, the top functions")
    parser.add_argument("--rules-change", action="store_true", help="after each run, every customer re-evaluated "
                        "under bench.rules_change's version 2: that is timed (and profiled) instead")
    args = parser.parse_args()
    settings = Settings()
    names = Names(settings.topic_prefix)
    spread, numbers = DefaultPartitioner(), list(range(settings.partitions))  # the producer's, as in bench.stream
    source = (one_each(names, args.customers) if args.rules_change  # as bench.rules_change streams them in
              else history(names, args.customers, args.events))
    records = [SimpleNamespace(topic=topic, key=key, value=value, offset=offset,
                               partition=spread(key, numbers, numbers))
               for offset, (topic, key, value, _) in enumerate(source)]
    scale = 1_000_000 if args.rules_change else 200_000  # the customers of the bench whose worker it stands for
    settings = settings.model_copy(update={"state_cache_customers": args.cache_customers or max(
        1, settings.state_cache_customers * args.customers // scale)})
    engine = Engine(SimpleNamespace(), settings, names,
                    {names.customers_table: _DictStore(), names.partitions_table: _DictStore()})
    collector.take_over()  # as the worker does
    if args.rules_change:
        _rules_changes(engine, records, settings, args)
        return
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, engine, records, settings.partitions, names.transactions)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    best = min(run(engine, records, settings.partitions, names.transactions) for _ in range(args.runs))
    stats = engine.stats  # of the last run
    print(f"engine: {args.events:,} records of {args.customers:,} customers, with flushes' CPU "
          f"(best of {args.runs}): {args.events / best:,.0f} records/s, {best / args.events * 1e6:.1f} µs/record")
    print(f"engine: {stats['changes']:,} segment changes, {stats['time_wakeups']:,} time wake-ups, "
          f"{stats['written']:,} customer writes, {stats['store_reads']:,} customers read back from the store per run "
          f"({settings.state_cache_customers:,} kept decoded)")
    print(f"engine: flushes' CPU {stats['flush_ns'] / 1e3 / max(stats['written'], 1):.1f} µs per customer write, "
          f"{stats['flush_ns'] / 1e3 / args.events:.1f} µs per record")


def _rules_changes(engine: Engine, records: list[Any], settings: Settings, args: argparse.Namespace) -> None:
    """``--rules-change``: each run streams the records in, then times the change (the best of the runs)."""
    best: tuple[float, int, dict[str, int]] | None = None
    for _ in range(1 if args.profile else args.runs):
        run(engine, records, settings.partitions, engine.names.transactions)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(rules_change, engine)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return
        took, customers = rules_change(engine)
        if best is None or took / customers < best[0] / best[1]:
            best = (took, customers, dict(engine.stats))
    assert best is not None
    took, customers, stats = best
    flush_s = stats["flush_ns"] / 1e9
    print(f"engine rules change: {customers:,} customers re-evaluated under version 2 with flushes' CPU (best of "
          f"{args.runs}): {took / customers * 1e6:.1f} µs/customer (re-evaluation "
          f"{(took - flush_s) / customers * 1e6:.1f}, flushes {flush_s / customers * 1e6:.1f}); "
          f"{stats['changes']:,} changes, {stats['store_reads']:,} customers read back from the store")


if __name__ == "__main__":
    main()
