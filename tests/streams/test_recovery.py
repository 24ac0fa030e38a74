"""Changes published past a partition's saved state (by a worker that stopped before saving them): a flush records
where the segment-change topic stands, and opening the partition puts the topic's last word back to the saved state
(``streams.worker.recovery``). The end-to-end case is ``tests/integration/test_crash.py``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson

from segmenter import step
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from streams.stored import pack
from streams.worker.partition import Partition
from streams.worker.persist import Delivery, Snapshot
from streams.worker.recovery import REPLAY_WAIT_S, Replaying, published_of
from tests.segmenter.helpers import day, purchase
from tests.streams.engines import RULES, TP, engine_on

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


def _change(customer: str, to: str, dimension: str = "value") -> bytes:
    return orjson.dumps({"type": "segment_change", "customer_id": customer, "dimension": dimension, "to": to})


def test_the_last_word_per_customer_and_dimension_in_topic_order():
    values = [_change("C1", "low_value"), _change("C2", "churn_risk"), _change("C1", "churn_risk"),
              orjson.dumps({"type": "tag_change", "customer_id": "C1", "tag": "vip", "added": True}),
              orjson.dumps({"type": "erasure", "customer_id": "C2"}), _change("C3", "mid_value", "tier"),
              b"not json", orjson.dumps({"type": "coupon"})]
    published, unreadable = published_of(values)
    assert {c: (p.segments, p.tags) for c, p in published.items()} == {
        "C1": ({"value": "churn_risk"}, {"vip": True}),  # C2: erased after its change
        "C3": ({"tier": "mid_value"}, {})}
    assert unreadable == 2


def _saved(engine, customer: str, record: step.CustomerRecord, *, epoch: int, changes_end: int | None) -> None:
    retail = load_ruleset(RULES)
    engine.customers.partitions.setdefault(0, {})[customer.encode()] = pack(0, record)
    meta = Partition(0, epoch=epoch, stream_time=NOW, ruleset=retail, changes_end=changes_end)
    engine.meta.partitions.setdefault(0, {})[b"p0"] = meta.meta_value()


def _opened(engine, published: list[bytes], behind: dict | None = None) -> tuple[Partition, list[int]]:
    """Partition 0 opened from the stores, the topic holding ``published`` past its saved state and the inputs
    ``behind`` (topic-partition -> end) past the group's commit."""
    asked: list[int] = []

    async def published_since(number: int, start: int) -> list[bytes]:
        asked.append(start)
        return published

    async def replay_targets(number: int) -> dict:
        return dict(behind or {})

    async def persist_meta(values) -> None:
        for number, value in values.items():
            engine.meta.partitions.setdefault(number, {})[f"p{number}".encode()] = value

    engine.reconciler.published_since = published_since  # type: ignore[method-assign]
    engine.reconciler.replay_targets = replay_targets  # type: ignore[method-assign]
    engine.flusher.persist_meta = persist_meta  # type: ignore[method-assign]
    engine.parts.clear()
    return asyncio.run(engine._open(0)), asked


def _low_value() -> step.CustomerRecord:
    record, _, _ = step.on_fact(step.CustomerRecord(), purchase("2026-06-01", 100, "e1"), event_id="e1",
                                now_day=day("2026-06-30"), ruleset=load_ruleset(RULES), policy=Policy())
    return record


def test_with_nothing_to_replay_the_saved_segment_is_published_where_the_topic_says_another():
    engine, _, _ = engine_on()
    record = _low_value()
    _saved(engine, "C1", record, epoch=2, changes_end=40)
    _saved(engine, "C2", record, epoch=2, changes_end=40)
    part, asked = _opened(engine, [_change("C1", "churn_risk"), _change("C2", "low_value"),
                                   _change("C9", "high_value")])  # C9: not in the saved state
    assert asked == [40]  # read from where the saved state's changes end
    assert part.epoch == 3
    assert part.replaying is None
    (doc,) = [orjson.loads(value) for _, value in part.changes]
    assert (doc["customer_id"], doc["from"], doc["to"], doc["cause"]) == ("C1", "churn_risk", "low_value", "recovery")
    assert doc["condition"] == "1 <= purchases_12m <= 4 and amount_12m < 5000"
    assert part.dirty == {"C1"}  # saved again at the next flush, which records the topic's new end
    assert engine.stats["recovery_changes"] == 1


def _purchase(names, customer: str, offset: int, when: str = "2026-06-20T10:00:00+00:00") -> SimpleNamespace:
    doc = {"event_id": f"{customer}-{offset}", "customer_id": customer, "occurred_at": when, "amount": "100.00",
           "order_id": f"o{offset}"}
    return SimpleNamespace(topic=names.transactions, partition=0, key=customer.encode(), value=orjson.dumps(doc),
                           offset=offset, timestamp=0)


def test_with_records_to_replay_only_what_the_replay_left_different_is_put_right_once_it_caught_up():
    engine, names, _ = engine_on()
    _saved(engine, "C1", _low_value(), epoch=2, changes_end=40)
    _saved(engine, "C2", _low_value(), epoch=2, changes_end=40)
    tx = TP(names.transactions, 0)
    part, _ = _opened(engine, [_change("C1", "churn_risk"), _change("C2", "low_value"), _change("C3", "high_value")],
                      behind={tx: 3})  # the stopped worker can have processed transactions up to offset 3
    assert part.replaying is not None
    assert part.changes == []  # not yet: the replay may publish the same changes again
    engine.edge.new_batch()
    engine._run(part, tx, [_purchase(names, "C3", 0), _purchase(names, "C3", 1)])
    (first,) = [orjson.loads(value) for _, value in part.changes]
    assert (first["customer_id"], first["from"], first["to"]) == ("C3", None, "low_value")  # the replay's own word
    part.changes = []
    engine._run(part, tx, [_purchase(names, "C9", 2)])  # offset 2: position 3, the end at the opening
    assert part.replaying is None
    docs = [orjson.loads(value) for _, value in part.changes]
    assert [(d["customer_id"], d["from"], d["to"], d["cause"]) for d in docs] == [
        ("C9", None, "low_value", "event"), ("C1", "churn_risk", "low_value", "recovery")]  # C2 said it; C3 superseded


def test_a_replay_that_cannot_reach_an_input_end_is_put_right_after_a_while():
    engine, names, sent = engine_on()
    _saved(engine, "C1", _low_value(), epoch=2, changes_end=40)
    part, _ = _opened(engine, [_change("C1", "churn_risk")], behind={TP(names.transactions, 0): 3})
    asyncio.run(engine._replay_overdue())
    assert part.replaying is not None  # not yet
    assert sent == []
    part.replaying.began -= REPLAY_WAIT_S
    asyncio.run(engine._replay_overdue())
    assert part.replaying is None
    (doc,) = [orjson.loads(value) for value in sent]  # handed to the producer at once, before any snapshot
    assert (doc["customer_id"], doc["from"], doc["to"], doc["cause"]) == ("C1", "churn_risk", "low_value", "recovery")


def test_a_meta_saved_before_the_topic_position_was_kept_reads_nothing():
    engine, _, _ = engine_on()
    _saved(engine, "C1", _low_value(), epoch=2, changes_end=None)
    part, asked = _opened(engine, [_change("C1", "churn_risk")])
    assert asked == []
    assert part.changes == []


def test_a_flush_records_where_the_topic_stands_once_its_changes_are_acknowledged():
    engine, names, _ = engine_on(RULES)
    part = engine.parts[0]
    part.epoch, part.changes_end = 5, 17
    loop = asyncio.new_event_loop()
    acked = []
    for offset, count in ((17, 3), (20, 2)):
        future = loop.create_future()
        future.set_result(SimpleNamespace(offset=offset))
        acked.append(Delivery(0, future, count))
    dead = loop.create_future()
    dead.set_result(SimpleNamespace(offset=900))
    engine.flusher.awaiting([*acked, Delivery(None, dead, 1)])  # a dead letter's offset is another topic's
    snap = engine.flusher.snapshot()
    assert isinstance(snap, Snapshot)
    assert snap.meta[0]["changes_end"] == 17  # until they are acknowledged, the saved state's changes end there
    engine.flusher.changes_out(snap, [d.future.result() for d in snap.deliveries])
    assert snap.meta[0]["changes_end"] == 22
    assert part.changes_end == 22
    # while the partition replays past changes it had not saved, its record stays where it was: a stop meanwhile
    # must find those changes again
    part.replaying = Replaying({}, {TP(names.transactions, 0): 9}, values=1, unreadable=0)
    future = loop.create_future()
    future.set_result(SimpleNamespace(offset=22))
    engine.flusher.awaiting([Delivery(0, future, 4)])
    snap = engine.flusher.snapshot()
    engine.flusher.changes_out(snap, [future.result()])
    loop.close()
    assert (snap.meta[0]["changes_end"], part.changes_end) == (22, 22)
