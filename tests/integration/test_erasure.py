"""Erasure end to end on the real broker and Redis: state, read model, overrides, tags, profile and ledger go; an
erasure is published; older events replayed (also after a restart) do not bring the customer back, and an event
dated after the erasure starts a fresh customer."""

from __future__ import annotations

import signal
import uuid
from datetime import UTC, datetime

import orjson
import redis

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


ZQ = "ZQ7731"


def _mentions(client: redis.Redis, text: str) -> list[str]:
    """Every place in the Redis database that names ``text``: key, string value, hash field or value, set or sorted
    set member, list element."""
    found = []
    needle = text.encode()
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts: list[bytes] = [key]
        if kind == "string":
            parts.append(client.get(key) or b"")
        elif kind == "hash":
            parts += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == "set":
            parts += list(client.smembers(key))
        elif kind == "zset":
            parts += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        found += [f"{kind} {key.decode(errors='replace')}" for part in parts if needle in part][:1]
    return found


def test_after_an_erasure_nothing_in_redis_names_the_customer_and_an_older_backup_does_not_bring_it_back(
        system, tmp_path, capsys, monkeypatch):
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker(data_dir=tmp_path / "w1")
    system.start_actions(data_dir=tmp_path / "a1", actions_replay_horizon="0d")
    rows = "".join(f"{ZQ},2026-0{1 + k % 5}-1{k % 9},1500,,z{k}\nK,2026-06-01,10,,k{k}\n" for k in range(11))
    (tmp_path / "tx.csv").write_text("customer_id,occurred_at,amount,kind,event_id\n" + rows)
    (tmp_path / "p.csv").write_text(f"customer_id,customer_type,industry,region\n{ZQ},enterprise,retail,north\n")
    assert system.run("import", "profiles", str(tmp_path / "p.csv"), "--quiet") == 0
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("tag", "add", ZQ, "vip:gold", "--reason", "board member") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0  # high value: an alert, a manager assigned
    client = redis.Redis.from_url(system.settings.redis_url)
    before = _mentions(client, ZQ)
    assert any("mgr:senior" in place for place in before), before  # the manager's set holds it
    assert any(":action:senior_manager:" in place for place in before), before
    older = tmp_path / "older.tar.gz"
    assert system.run("backup", str(older)) == 0

    assert system.run("erase", ZQ, "--reason", "request 7", "--by", "dpo") == 0
    assert "the owning worker erased it" in capsys.readouterr().out
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    wait_until(lambda: _mentions(client, ZQ), lambda left: not left, 30, "every Redis mention of the customer gone")
    assert ReadModel.of(system.settings).customer("K") is not None  # the others stay

    # the backup taken before the erasure, restored into an empty stack, does not bring the customer back
    prefix = f"r{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("SEGMENTER_TOPIC_PREFIX", prefix)
    system.env["SEGMENTER_TOPIC_PREFIX"] = prefix
    capsys.readouterr()
    assert system.run("restore", str(older)) == 0
    assert "left out (erased)" in capsys.readouterr().out
    restored = ReadModel.of(system.settings)
    assert restored.customer(ZQ) is None
    assert restored.customer("K") is not None
    names = Names(prefix)
    for topic in (names.changelog(names.customers_table), names.ledger_changelog, names.profiles, names.tags):
        assert not [k for k, _ in consume_all(system.settings, topic) if k and ZQ.encode() in k], topic
    assert not _mentions(client, ZQ)


def test_erasure_is_refused_without_a_key(system, monkeypatch, capsys):
    monkeypatch.delenv("SEGMENTER_ERASURE_KEY")
    assert system.run("erase", "A", "--reason", "r") == 1
    assert "erasure refused: no erasure key; set SEGMENTER_ERASURE_KEY" in capsys.readouterr().err
