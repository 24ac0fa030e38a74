"""A partition's data fetched before its ruleset: held, then processed in order once the ruleset comes.

Kafka orders nothing across topics, so a fresh worker may fetch a partition's transactions in the
same batch as (and ahead of) the control record that adopts the ruleset, or even batches earlier.
The changes emitted must not depend on that: they equal those of the ruleset-first order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import orjson

from segmenter.rules import load_ruleset
from streams.names import Names
from streams.settings import Settings
from streams.worker.engine import Engine
from streams.worker.partition import Partition

RULES = (Path(__file__).parents[2] / "examples/rules/retail-value.yaml").read_text()


class TP(NamedTuple):
    topic: str
    partition: int


class _Store:
    """A table's store in memory: empty at the start, then what a test's flushes wrote into it."""

    def __init__(self) -> None:
        self.data = self
        self.partitions: dict[int, dict[bytes, bytes]] = {}

    def _db_for_partition(self, partition: int) -> dict[bytes, bytes]:
        return self.partitions.setdefault(partition, {})

    def _visible_items(self, db: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        return list(db.items())


def _engine(ruleset: str | None = None, **overrides: Any) -> tuple[Engine, Names, list[bytes]]:
    """An engine on in-memory stores with partition 0 open (under ``ruleset``, if given), flushing only when a test
    says; ``overrides``: settings, unvalidated (a test may go below a setting's floor). The list receives the
    segment-change documents the producer would be handed."""
    settings = Settings(clock="event", flush_interval_s=1e6, flush_max_dirty=10**9, partitions=1).model_copy(
        update=overrides)  # one partition: every key belongs on partition 0 (streams/worker/routing.py)
    names = Names(settings.topic_prefix)
    engine = Engine(SimpleNamespace(), settings, names,
                    {names.customers_table: _Store(), names.partitions_table: _Store()})
    engine.parts[0] = Partition(0, ruleset=None if ruleset is None else load_ruleset(ruleset))
    sent: list[bytes] = []

    async def send_outputs() -> None:  # what the producer would be handed
        for part in engine.parts.values():
            sent.extend(value for _, value in part.changes)
            part.changes = []

    engine._send_outputs = send_outputs  # type: ignore[method-assign]
    return engine, names, sent


def _transactions(names: Names, count: int) -> list[SimpleNamespace]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    records = []
    for n in range(count):  # one customer climbing through the value segments
        doc = {"event_id": f"e{n}", "customer_id": "C1", "occurred_at": (start + timedelta(days=n)).isoformat(),
               "amount": "1500.00", "order_id": f"o{n}"}
        records.append(SimpleNamespace(topic=names.transactions, partition=0, key=b"C1", value=orjson.dumps(doc),
                                       offset=n))
    return records


def _rules(names: Names) -> SimpleNamespace:
    value = orjson.dumps({"type": "rules", "yaml": RULES, "source": "retail-value.yaml"})
    return SimpleNamespace(topic=names.control, partition=0, key=b"rules", value=value, offset=0)


def _changes(sent: list[bytes]) -> list[tuple[str | None, str]]:
    return [(doc["from"], doc["to"]) for doc in map(orjson.loads, sent)]


def _always(tp: Any) -> bool:
    return True


async def test_records_fetched_before_the_ruleset_give_the_same_changes_as_rules_first() -> None:
    reference, names, expected = _engine()
    tx, control = TP(names.transactions, 0), TP(names.control, 0)
    await reference.take({control: [_rules(names)], tx: _transactions(names, 12)}, _always)
    assert len(_changes(expected)) >= 3  # the climb is seen step by step

    same_batch, _, sent = _engine()  # the data ahead of the control record in one batch
    await same_batch.take({tx: _transactions(names, 12), control: [_rules(names)]}, _always)
    assert _changes(sent) == _changes(expected)

    earlier, _, sent = _engine()  # the data batches earlier: nothing processed or committed meanwhile
    records = _transactions(names, 12)
    await earlier.take({tx: records[:5]}, _always)
    await earlier.take({tx: records[5:]}, _always)
    part = earlier.parts[0]
    assert sent == []
    assert part.offsets == {}
    assert not part.records
    await earlier.take({control: [_rules(names)]}, _always)
    assert _changes(sent) == _changes(expected)
    assert part.offsets == {tx: 12, control: 1}
    assert part.held == []


async def test_past_the_hold_limit_the_partition_goes_on_unclassified_and_loses_nothing() -> None:
    engine, names, sent = _engine(hold_without_rules=4)
    tx, control = TP(names.transactions, 0), TP(names.control, 0)
    records = _transactions(names, 12)
    await engine.take({tx: records[:3]}, _always)
    assert engine.parts[0].offsets == {}  # held
    await engine.take({tx: records[3:6]}, _always)  # 6 > 4: processed, unclassified
    part = engine.parts[0]
    assert part.unruled
    assert part.held == []
    assert part.offsets == {tx: 6}
    assert sent == []
    assert engine.stats["applied"] == 6
    await engine.take({tx: records[6:], control: [_rules(names)]}, _always)
    assert part.offsets == {tx: 12, control: 1}
    assert engine.stats["applied"] == 12
    assert _changes(sent)
    assert all(doc["from"] is None for doc in map(orjson.loads, sent[:1]))
