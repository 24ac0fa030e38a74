"""Erasure end to end on the real broker and Redis: state, read model, overrides, tags, profile and ledger go; an
erasure is published; older events replayed (also after a restart) do not bring the customer back, and an event
dated after the erasure starts a fresh customer."""

from __future__ import annotations

import signal
from datetime import UTC, datetime

import orjson

from schemas.outputs import CHANGE_ADAPTER, CustomerErased
from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import RETAIL, consume_all, produce, wait_until

TX = """customer_id,occurred_at,amount,kind,event_id
A,2025-09-01,100,,a1
B,2026-06-01,200,,b1
"""
PROFILES = """customer_id,customer_type,industry,region
A,enterprise,retail,north
"""


def _purchase(customer: str, event_id: str, when: str) -> tuple[bytes, bytes]:
    return customer.encode(), orjson.dumps({"event_id": event_id, "customer_id": customer, "occurred_at": when,
                                            "amount": "70.00", "order_id": event_id})


def test_erasure_end_to_end(system, tmp_path, capsys):
    names = Names(system.settings.topic_prefix)
    assert system.run("rules", "apply", str(RETAIL)) == 0
    first = system.start_worker(data_dir=tmp_path / "w1")
    system.start_actions(data_dir=tmp_path / "a1", actions_replay_horizon="0d")
    (tmp_path / "tx.csv").write_text(TX)
    (tmp_path / "p.csv").write_text(PROFILES)
    assert system.run("import", "profiles", str(tmp_path / "p.csv"), "--quiet") == 0
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("tick", "--to", "2026-06-30") == 0  # A: churn_risk, a coupon
    assert system.run("override", "set", "A", "value", "high_value", "--reason", "vip") == 0
    assert system.run("tag", "add", "A", "vip:gold", "--reason", "board member") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    model = ReadModel.of(system.settings)
    assert model.customer("A") is not None
    amounts_before = {r[1]: r[3] for r in model.report(2)}

    assert system.run("erase", "A", "--reason", "GDPR request 42", "--by", "dpo") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    assert model.customer("A") is None
    assert model.customer_ids() == ["B"]
    assert model.tag_counts() == {}
    assert model.recent_changes("A") == []
    assert {r[1]: r[3] for r in model.report(2)}.get("high_value") in (None, 0)  # A's amount left the sums
    assert amounts_before["high_value"] > 0
    erasures = [c for c in (CHANGE_ADAPTER.validate_json(v) for _, v in consume_all(system.settings,
                                                                                      names.segment_changes))
                if isinstance(c, CustomerErased)]
    assert [(e.customer_id, e.reason, e.by, e.segments) for e in erasures] == [
        ("A", "GDPR request 42", "dpo", {"value": "high_value"})]
    tombstones = {k for k, v in consume_all(system.settings, names.changelog(names.customers_table)) if v is None}
    assert b"A" in tombstones
    wait_until(lambda: orjson.loads((tmp_path / "a1" / "actions.ready").read_bytes())["stats"].get("erased"),
               bool, 30, "the action worker dropping A's ledger")
    ledger = {k: v for k, v in consume_all(system.settings, names.ledger_changelog) if k == b"A"}
    assert ledger == {b"A": None}  # its last word on A: a tombstone
    capsys.readouterr()
    assert system.run("override", "list") == 0
    assert system.run("tag", "list") == 0
    listed = capsys.readouterr().out
    assert "vip" not in listed
    assert "board member" not in listed

    # A replay of an older event does not bring A back, not even after the worker that erased it dies
    system.start_worker(data_dir=tmp_path / "w2")
    system.kill_worker(first, signal.SIGKILL)
    produce(system.settings, names.transactions, [_purchase("A", "a-old", "2026-06-15T10:00:00+00:00")])
    assert system.run("wait", "--timeout", "180") == 0
    assert model.customer("A") is None

    # an event dated after the erasure starts a fresh customer
    now = datetime.now(UTC).isoformat()
    produce(system.settings, names.transactions, [_purchase("A", "a-new", now)])
    assert system.run("wait", "--timeout", "120") == 0
    fresh = model.customer("A")
    assert fresh is not None
    assert fresh.doc["metrics"]["purchases_12m"] == 1
    assert fresh.doc["profile"] == {}  # nothing of before
