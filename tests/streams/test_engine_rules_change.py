"""A ruleset adopted over customers already stored: they are re-evaluated a step at a time between batches, their
changes published as they go, and the control topic's offset is committed only once every one of them is done, so
a worker stopped half way reads the rules record again and finishes the job."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from bench.rules_change import version_two
from segmenter.rules import load_ruleset
from streams.worker import adoption
from tests.streams.engines import RULES, TP, engine_on, quiet_io

CUSTOMERS = 30


def _purchases(topic: str) -> list[SimpleNamespace]:
    when = datetime(2025, 6, 1, tzinfo=UTC).isoformat()
    return [SimpleNamespace(topic=topic, partition=0, key=f"C{n:02d}".encode(), offset=n, value=orjson.dumps(
        {"event_id": f"e{n}", "customer_id": f"C{n:02d}", "occurred_at": when, "amount": "50.00", "order_id": f"o{n}"}))
        for n in range(CUSTOMERS)]


def _rules(topic: str, text: str, offset: int = 0) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=0, key=b"rules", offset=offset,
                           value=orjson.dumps({"type": "rules", "yaml": text, "source": "retail-value.yaml"}))


def _moves(sent: list[bytes]) -> dict[str, tuple[str | None, str, str]]:
    return {doc["customer_id"]: (doc["from"], doc["to"], doc["cause"]) for doc in map(orjson.loads, sent)}


def _always(tp: Any) -> bool:
    return True


async def test_stored_customers_are_re_evaluated_in_steps_and_the_rules_record_is_committed_after_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adoption, "REEVALUATE_STEP", 4)
    engine, names, sent = engine_on(RULES)
    quiet_io(engine, monkeypatch)
    tx, control = TP(names.transactions, 0), TP(names.control, 0)
    await engine.take({tx: _purchases(names.transactions)}, _always)
    await engine.flusher.now()  # stored, and evicted from memory as a flush leaves them
    sent.clear()
    await engine.take({control: [_rules(names.control, version_two())]}, _always)
    part = engine.parts[0]
    assert part.reevaluating is not None
    assert part.reevaluating.total == CUSTOMERS
    assert control not in part.offsets  # held back while customers are left
    await engine.adoption.reevaluated()
    assert part.reevaluating is None
    assert part.offsets[control] == 1
    assert _moves(sent) == {f"C{n:02d}": ("low_value", "first_timer", "rules") for n in range(CUSTOMERS)}
    assert engine.stats["rules_adopted"] == 1


async def test_a_rules_record_read_again_over_a_half_done_change_finishes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The state a worker leaves when it stops half way: version 2 in force in the partition's saved entry, its
    customers still under version 1; the rules record (uncommitted) is read again on opening."""
    engine, names, sent = engine_on(RULES)
    quiet_io(engine, monkeypatch)
    tx, control = TP(names.transactions, 0), TP(names.control, 0)
    await engine.take({tx: _purchases(names.transactions)}, _always)
    await engine.flusher.now()
    v2 = version_two()
    meta = orjson.loads(engine.parts[0].meta_value())
    # changes_end None: no changes published past the saved state to read back (that needs a broker)
    engine.meta._db_for_partition(0)[b"p0"] = orjson.dumps({**meta, "rulesets": [load_ruleset(v2).source],
                                                            "changes_end": None})
    engine.parts.clear()  # as a worker that opens the partition anew
    sent.clear()
    await engine.take({control: [_rules(names.control, v2)]}, _always)
    await engine.adoption.reevaluated()
    assert _moves(sent) == {f"C{n:02d}": ("low_value", "first_timer", "rules") for n in range(CUSTOMERS)}
    assert engine.parts[0].offsets[control] == 1
    sent.clear()
    await engine.take({control: [_rules(names.control, v2, offset=1)]}, _always)  # a copy, later: nothing again
    await engine.adoption.reevaluated()
    assert sent == []


async def test_a_customer_that_fails_to_re_evaluate_is_counted_and_the_others_go_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine, names, sent = engine_on(RULES)
    quiet_io(engine, monkeypatch)
    tx, control = TP(names.transactions, 0), TP(names.control, 0)
    await engine.take({tx: _purchases(names.transactions)}, _always)
    await engine.flusher.now()
    sent.clear()
    on_rules = adoption.step.on_rules

    def failing(record: Any, *args: Any) -> Any:
        if record.profile.get("poison"):
            raise ValueError("a defect met by one customer")
        return on_rules(record, *args)

    record = engine.store.get(engine.parts[0], "C05")
    engine.parts[0].records["C05"] = record._replace(profile={"poison": "yes"})
    monkeypatch.setattr(adoption.step, "on_rules", failing)
    await engine.take({control: [_rules(names.control, version_two())]}, _always)
    await engine.adoption.reevaluated()
    engine.adoption.check()  # nothing stopped it
    assert engine.stats["processing_errors"] == 1
    assert set(_moves(sent)) == {f"C{n:02d}" for n in range(CUSTOMERS)} - {"C05"}
    assert engine.parts[0].offsets[control] == 1
