"""What the worker keeps in memory between flushes: no more than its cache of decoded customers, documents of their
own size, and a fetched batch run in slices gives what it gives in one piece."""

from __future__ import annotations

import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson

from streams.names import Names
from streams.settings import Settings
from streams.worker import engine as engine_module
from streams.worker.engine import Engine
from tests.streams.engines import RULES, TP, engine_on, quiet_io


def _purchases(names: Names, customers: int, days: int) -> list[SimpleNamespace]:
    """Every customer buys once a day for ``days`` days (enough buckets for the encoder to keep their prefix)."""
    start, records = datetime(2025, 1, 1, tzinfo=UTC), []
    for day in range(days):
        for c in range(customers):
            doc = {"event_id": f"e{day}-{c}", "customer_id": f"C{c}", "amount": "120.00", "order_id": f"o{day}-{c}",
                   "occurred_at": (start + timedelta(days=day, seconds=c)).isoformat()}
            records.append(SimpleNamespace(topic=names.transactions, partition=0, key=f"C{c}".encode(),
                                           value=orjson.dumps(doc), offset=len(records), timestamp=0))
    return records


async def _flush(engine: Engine) -> None:
    """A whole flush through the flusher, its I/O stubbed (``tests.streams.engines.quiet_io``)."""
    await engine.flusher.now()


def _always(tp: Any) -> bool:
    return True


async def test_the_encoder_keeps_nothing_of_the_customers_evicted_from_memory(monkeypatch) -> None:
    """The encoder's memo of a very active customer's older days holds that state's buckets: kept for an evicted
    customer, it would keep the whole state in memory past the cache's bound."""
    engine, names, _ = engine_on(RULES, state_cache_customers=10)
    quiet_io(engine, monkeypatch)
    tx, records = TP(names.transactions, 0), _purchases(names, customers=40, days=12)
    for day in range(12):
        await engine.take({tx: records[day * 40 : (day + 1) * 40]}, _always)
        await _flush(engine)
        part = engine.parts[0]
        assert len(part.records) <= 10
        encoder = engine.flusher.encoder
        assert len(encoder) <= len(part.records)
        assert all(customer in part.records for customer in [f"C{c}" for c in range(40)] if customer in encoder)
    assert engine.stats["store_reads"] > 0  # the evicted ones were read back, and encoded in full again
    assert len(engine.flusher.encoder) > 0  # the cached ones, with 8 or more days, are kept


async def test_a_batch_run_in_slices_gives_what_it_gives_in_one_piece(monkeypatch: Any) -> None:
    """Between slices of a fetched batch the event loop turns (a flush in flight moves on); the changes, their
    order and the offsets are those of running it whole."""
    names = Names(Settings().topic_prefix)
    records = _purchases(names, customers=30, days=10)
    tx = TP(names.transactions, 0)
    outcomes = []
    for step in (10**9, 7):
        monkeypatch.setattr(engine_module, "RUN_STEP", step)
        engine, _, sent = engine_on(RULES)
        await engine.take({tx: records}, _always)
        outcomes.append((sent, engine.parts[0].offsets, engine.stats["applied"]))
    whole, sliced = outcomes
    assert whole[0]
    assert whole == sliced
    assert whole[1] == {tx: len(records)}


def _freed(drop: Any) -> int:
    """Bytes of Python memory given back by ``drop()`` (tracemalloc on)."""
    before = tracemalloc.get_traced_memory()[0]
    drop()
    return before - tracemalloc.get_traced_memory()[0]


async def test_the_documents_a_batch_leaves_for_its_flush_take_their_own_size() -> None:
    """A change document waits for its batch's hand-over to the producer and a story entry for its flush's Redis write;
    orjson (3.12 on) returns every document in its 4 KiB working buffer, which 8,000 customers' entries would make
    32 MiB. Here each document, with its list and tuple, gives back less than 1 KiB."""
    engine, names, sent = engine_on(RULES)
    records = _purchases(names, customers=300, days=1)
    tracemalloc.start()
    try:
        await engine.take({TP(names.transactions, 0): records}, _always)
        history = engine.parts[0].history
        entries = sum(len(h) for h in history.values())
        documents = len(sent)
        length = sum(sys.getsizeof(doc) for doc in sent)
        freed_entries, freed_documents = _freed(history.clear), _freed(sent.clear)
    finally:
        tracemalloc.stop()
    assert entries == documents == 300  # each customer's first classification
    assert freed_documents < 2 * length  # their size and the list (212,512 for 210,080 here; 2,445,932 before)
    assert freed_entries < 1024 * entries  # about 380 bytes each with their tuple, list and change id (4 KiB before)
