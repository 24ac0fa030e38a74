"""A partition's data fetched before its ruleset: held, then processed in order once the ruleset comes.

Kafka orders nothing across topics, so a fresh worker may fetch a partition's transactions in the
same batch as (and ahead of) the control record that adopts the ruleset, or even batches earlier.
The changes emitted must not depend on that: they equal those of the ruleset-first order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson

from streams.names import Names
from tests.streams.engines import RULES, TP, engine_on


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
    reference, names, expected = engine_on()
    tx, control = TP(names.transactions, 0), TP(names.control, 0)
    await reference.take({control: [_rules(names)], tx: _transactions(names, 12)}, _always)
    assert len(_changes(expected)) >= 3  # the climb is seen step by step

    same_batch, _, sent = engine_on()  # the data ahead of the control record in one batch
    await same_batch.take({tx: _transactions(names, 12), control: [_rules(names)]}, _always)
    assert _changes(sent) == _changes(expected)

    earlier, _, sent = engine_on()  # the data batches earlier: nothing processed or committed meanwhile
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
    engine, names, sent = engine_on(hold_without_rules=4)
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
    await engine.adoption.reevaluated()  # the customers stored unclassified, under the ruleset now
    assert part.offsets == {tx: 12, control: 1}
    assert engine.stats["applied"] == 12
    assert _changes(sent)
    assert all(doc["from"] is None for doc in map(orjson.loads, sent[:1]))
