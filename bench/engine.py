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

from bench.stream import RULES, history
from segmenter.rules import load_ruleset
from streams.names import Names
from streams.readmodel.rows import script_args
from streams.settings import Settings
from streams.worker import collector
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


def run(engine: Engine, records: list[Any], partitions: int, topic: str) -> float:
    ruleset = load_ruleset(RULES)
    parts = {number: Partition(number, ruleset=ruleset) for number in range(partitions)}
    decode, ops = engine.edge.decoders[topic], engine._ops
    engine.parts.clear()
    engine.parts.update(parts)  # the flusher holds the engine's dict
    engine.stats.clear()
    store = engine.customers
    store.partitions.clear()
    flush_at, prefix = engine.settings.flush_max_dirty, engine.names.redis
    t0 = time.perf_counter()
    flusher = engine.flusher
    for n, record in enumerate(records):
        part = parts[record.partition]
        op, args = decode(record)
        ops[op](part, *args)
        if len(part.changes) > 1000:
            part.changes = []  # what _send_outputs hands to the producer after each batch
        if not n % BATCH and flusher.dirty() >= flush_at:  # the worker looks once a fetched batch
            t1 = time.perf_counter()
            snapshot = flusher.snapshot()
            flusher.encode(snapshot)  # in the worker: in slices, between batches
            script_args(prefix, snapshot.projected)
            for number, writes in snapshot.customers.items():
                store._db_for_partition(number).update(writes)
            flusher.evict()  # as at the end of a flush: the least recently changed go, read back when needed
            engine.collector.freeze()
            engine.stats["written"] += len(snapshot.projected)
            engine.stats["flush_ns"] += int((time.perf_counter() - t1) * 1e9)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--customers", type=int, default=60_000)
    parser.add_argument("--cache-customers", type=int, default=0, help="decoded customers kept (default: "
                        "SEGMENTER_STATE_CACHE_CUSTOMERS scaled from bench.stream's 200,000 customers to these)")
    parser.add_argument("--runs", type=int, default=3, help="the best of this many runs is reported")
    parser.add_argument("--profile", action="store_true", help="one run under cProfile, the top functions")
    args = parser.parse_args()
    settings = Settings()
    names = Names(settings.topic_prefix)
    spread, numbers = DefaultPartitioner(), list(range(settings.partitions))  # the producer's, as in bench.stream
    records = [SimpleNamespace(topic=topic, key=key, value=value, offset=offset,
                               partition=spread(key, numbers, numbers))
               for offset, (topic, key, value, _) in enumerate(history(names, args.customers, args.events))]
    settings = settings.model_copy(update={"state_cache_customers": args.cache_customers or max(
        1, settings.state_cache_customers * args.customers // 200_000)})
    engine = Engine(SimpleNamespace(), settings, names,
                    {names.customers_table: _DictStore(), names.partitions_table: _DictStore()})
    collector.take_over()  # as the worker does
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


if __name__ == "__main__":
    main()
