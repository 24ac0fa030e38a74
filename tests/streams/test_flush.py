"""The flusher's order, through its public face: a snapshot's changes acknowledged before anything of it reaches
Redis, Redis before the changelogs, the changelogs before the input offsets are committed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson

from streams.readmodel.writer import CHUNK
from streams.worker.persist import Delivery
from tests.streams.engines import RULES, TP, QuietProjection, engine_on, quiet_io


def _purchase(names, customer: str, offset: int) -> SimpleNamespace:
    doc = {"event_id": f"e{offset}", "customer_id": customer, "amount": "120.00", "order_id": f"o{offset}",
           "occurred_at": "2026-06-01T10:00:00+00:00"}
    return SimpleNamespace(topic=names.transactions, partition=0, key=customer.encode(), value=orjson.dumps(doc),
                           offset=offset, timestamp=0)


async def test_a_flush_waits_for_its_changes_then_writes_redis_the_changelogs_and_commits_in_that_order(
        monkeypatch) -> None:
    engine, names, _ = engine_on(RULES)
    log = quiet_io(engine, monkeypatch)
    tx = TP(names.transactions, 0)
    await engine.take({tx: [_purchase(names, "A", 0), _purchase(names, "B", 1)]}, lambda tp: True)
    assert engine.flusher.dirty() == 2
    acknowledged = asyncio.get_running_loop().create_future()
    engine.flusher.awaiting([Delivery(0, acknowledged, 2)])  # the segment changes, handed to the producer
    flushing = asyncio.create_task(engine.flusher.now())
    for _ in range(20):
        await asyncio.sleep(0)
    assert engine.flusher.stage[0] == "segment changes acknowledged"
    assert log == []  # nothing of the snapshot is written before its changes are acknowledged
    assert engine.flusher.dirty() == 0  # the snapshot was taken: what comes now goes into the next one
    log.append("acknowledged")
    acknowledged.set_result(SimpleNamespace(offset=40))
    await flushing
    assert log == ["acknowledged", "redis", "changelog", "meta", "commit"]
    stored = engine.customers._db_for_partition(0)
    assert sorted(stored) == [b"A", b"B"]
    assert orjson.loads(engine.meta._db_for_partition(0)[b"p0"])["changes_end"] == 42  # where the topic stands
    assert engine.flusher.projection.rows == 2


async def test_a_big_flush_writes_each_chunk_of_rows_while_the_next_is_encoded_in_order_clocks_with_the_last(
        monkeypatch) -> None:
    engine, names, _ = engine_on(RULES)
    log = quiet_io(engine, monkeypatch)
    tx = TP(names.transactions, 0)
    total = CHUNK * 2 + 7
    await engine.take({tx: [_purchase(names, f"C{i:05d}", i) for i in range(total)]}, lambda tp: True)
    encoded: list[int] = []  # customers encoded so far, at each slice
    encode = engine.flusher.encode

    def counting(snap, start=0, stop=None):
        encode(snap, start, stop)
        encoded.append(len(snap.projected))

    monkeypatch.setattr(engine.flusher, "encode", counting)
    calls: list[tuple[list[str], bool, tuple[int, ...], int]] = []
    projection = engine.flusher.projection

    async def write_many(rows, clocks=None, partitions=()):
        # Redis at work: the flush encodes the next chunk meanwhile (waited for, up to 5 s, not assumed from a sleep)
        target = min((len(calls) + 2) * CHUNK, total)
        for _ in range(5000):
            if encoded[-1] >= target:
                break
            await asyncio.sleep(0.001)
        calls.append(([r.customer_id for r in rows], clocks is not None, tuple(partitions), encoded[-1]))
        return await QuietProjection.write_many(projection, rows, clocks, partitions)

    monkeypatch.setattr(projection, "write_many", write_many)
    await engine.flusher.now()
    assert [len(rows) for rows, *_ in calls] == [CHUNK, CHUNK, 7]
    assert sorted(c for rows, *_ in calls for c in rows) == [f"C{i:05d}" for i in range(total)]  # each once
    assert [(clocks, partitions) for _, clocks, partitions, _ in calls] == [(False, ()), (False, ()), (True, (0,))]
    # while the first chunk was in Redis, the second was encoded whole; while the second was, the third
    assert [seen for *_, seen in calls] == [CHUNK * 2, total, total]
    assert log == ["redis", "redis", "redis", "changelog", "meta", "commit"]
    assert engine.flusher.stats["flushes"] == 1


async def test_backpressure_waits_for_the_flush_in_flight_only_once_ahead_flushes_worth_are_dirty(monkeypatch) -> None:
    engine, names, _ = engine_on(RULES, flush_max_dirty=2)
    quiet_io(engine, monkeypatch)
    tx = TP(names.transactions, 0)
    acknowledged = asyncio.get_running_loop().create_future()
    engine.flusher.awaiting([Delivery(0, acknowledged, 2)])
    # 2 dirty: a flush is due and starts, held at its changes' acknowledgement
    await engine.take({tx: [_purchase(names, f"A{i}", i) for i in range(2)]}, lambda tp: True)
    await engine.take({tx: [_purchase(names, f"B{i}", 10 + i) for i in range(3)]}, lambda tp: True)
    assert engine.flusher.in_flight()
    assert engine.flusher.dirty() == 3
    await asyncio.wait_for(engine.flusher.backpressure(ahead=2), 1)  # 3 < 2 x 2: a change runs ahead
    waiting = asyncio.create_task(engine.flusher.backpressure())  # 3 >= 2: an input batch waits
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiting.done()
    acknowledged.set_result(SimpleNamespace(offset=0))
    await asyncio.wait_for(waiting, 5)
    assert not engine.flusher.in_flight()
    assert engine.stats["flush_waits"] == 1
