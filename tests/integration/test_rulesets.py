"""Several rulesets in force side by side (crm, abc, rfm), each versioned by its own owner: the export holds every
one's dimensions, each change names the ruleset that holds its dimension, actions of each fire, names stay unique
across them; one retired leaves every customer with cause ``rules`` and a change to no segment, fires nothing, and
its dimension is no longer one an override may pin."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from streams.cli.demo_data import DemoSpec, generate
from streams.names import Names
from tests.integration.helpers import ROOT, classify_csv, consume_all, read_csv, row_differences, wait_until

pytestmark = pytest.mark.integration

RULES = ROOT / "examples" / "rules"
CRM_COLUMNS = ("value", "lifecycle", "交易趋势")


def _changes(system) -> list[dict]:
    names = Names(system.settings.topic_prefix)
    return [orjson.loads(value) for _, value in consume_all(system.settings, names.segment_changes)]


def test_crm_abc_and_rfm_in_force_side_by_side_then_abc_retired(system, tmp_path, capsys):
    demo = generate(DemoSpec(customers=400, seed=11), tmp_path / "demo")
    for name in ("crm", "abc", "rfm"):
        assert system.run("rules", "apply", str(RULES / f"{name}.yaml")) == 0
    capsys.readouterr()
    clash = tmp_path / "rfm2.yaml"
    clash.write_text((RULES / "rfm.yaml").read_text().replace("id: rfm", "id: rfm2", 1))
    assert system.run("rules", "apply", str(clash)) == 1
    assert "dimension 'rfm' is also in rfm@1, which is in force" in capsys.readouterr().err

    system.start_worker(population_interval_s="0.5")  # ABC and RFM ranks taken every half second
    system.start_actions(actions_replay_horizon="0d")  # history acts too
    for kind in ("profiles", "transactions", "interactions"):
        assert system.run("import", kind, str(demo[kind]), "--quiet") == 0
    assert system.run("tick", "--to", "2026-07-31T23:59:59+00:00") == 0
    assert system.run("wait", "--actions", "--timeout", "180") == 0

    capsys.readouterr()
    assert system.run("rules", "show") == 0
    shown = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in shown] == ["abc v1", "crm v1", "rfm v1"]

    exported = tmp_path / "export.csv"

    def export() -> dict[str, dict[str, str]]:
        assert system.run("export", "--out", str(exported)) == 0
        return read_csv(exported)

    got = wait_until(export, lambda rows: sum(row["abc"] == "A" for row in rows.values()) > 0, 60,
                     "the population's ranks put customers in class A")
    assert system.run("wait", "--actions", "--timeout", "180") == 0
    assert len(got) == 400
    crm = classify_csv(system.run, demo, "2026-07-31", tmp_path / "crm.csv", rules=RULES / "crm.yaml")
    assert row_differences({c: {k: row[k] for k in ("customer_id", *CRM_COLUMNS)} for c, row in got.items()},
                           {c: {k: row[k] for k in ("customer_id", *CRM_COLUMNS)} for c, row in crm.items()}) == {}
    abc_names = {"A", "B", "C", "no_purchase_12m"}
    assert {row["abc"] for row in got.values()} <= abc_names
    assert all(row["rfm"] for row in got.values())

    changes = [c for c in _changes(system) if c["type"] == "segment_change"]
    owners = {(c["dimension"], c["ruleset_id"]) for c in changes}
    assert owners == {("value", "crm"), ("lifecycle", "crm"), ("交易趋势", "crm"), ("abc", "abc"), ("rfm", "rfm")}

    names = Names(system.settings.topic_prefix)
    granted = Counter(orjson.loads(v)["action"] for _, v in consume_all(system.settings, names.coupons))
    alerted = Counter(orjson.loads(v)["action"] for _, v in consume_all(system.settings, names.alerts))
    assert granted["winback_coupon"] > 0  # crm's
    assert alerted["a_account_manager"] > 0  # abc's

    customer = next(c for c, row in got.items() if row["abc"] == "A")
    assert system.run("override", "set", customer, "abc", "B", "--reason", "disputed") == 0
    assert system.run("rules", "retire", "abc") == 0
    assert system.run("wait", "--actions", "--timeout", "180") == 0
    capsys.readouterr()
    assert system.run("override", "set", customer, "abc", "A", "--reason", "x") == 1
    assert "abc" in capsys.readouterr().err
    assert system.run("rules", "retire", "nothing") == 1
    assert system.run("rules", "retire", "rfm") == 0
    capsys.readouterr()
    assert system.run("rules", "retire", "crm") == 1
    assert "the only ruleset in force" in capsys.readouterr().err
    assert system.run("wait", "--actions", "--timeout", "180") == 0

    every = [c for c in _changes(system) if c["type"] == "segment_change"]  # in partition order, not time order
    left = [c for c in every if c["to"] is None]
    assert Counter(c["dimension"] for c in left) == {"abc": 400, "rfm": 400}
    assert all(c["condition"] == "its ruleset is no longer in force" for c in left)
    # the rulesets were applied before any event: the retirements are the only changes with cause rules, and
    # crm's dimensions did not move with them
    assert [c for c in every if c["cause"] == "rules"] == left

    remaining = export()
    assert len(remaining) == 400
    assert "abc" not in next(iter(remaining.values()))
    assert row_differences({c: {k: row[k] for k in ("customer_id", *CRM_COLUMNS)} for c, row in remaining.items()},
                           {c: {k: row[k] for k in ("customer_id", *CRM_COLUMNS)} for c, row in crm.items()}) == {}
    assert Counter(orjson.loads(v)["action"] for _, v in consume_all(system.settings, names.alerts)) == alerted
    assert system.run("rules", "preview", str(RULES / "crm-v2.yaml"), "--quiet") == 0  # beside what is in force
