"""Manual overrides on the real broker and Redis: set (the alert fires once), surviving a rebalance and the
death of the worker that applied it, expiring on its day, cleared, refused for an unknown segment, and stale
when a new ruleset drops the segment."""

from __future__ import annotations

import signal

from schemas.outputs import Alert, SegmentChange
from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import RETAIL, consume_all

TX = """customer_id,occurred_at,amount,kind,event_id
A,2026-06-01,100,,a1
B,2026-06-01,100,,b1
"""
LATER = """customer_id,occurred_at,amount,kind,event_id
A,2026-07-02,100,,a2
"""


def _value(system, customer: str) -> str:
    view = ReadModel.of(system.settings).customer(customer)
    assert view is not None
    return view.segments["value"]


def _changes(system, customer: str) -> list[SegmentChange]:
    records = consume_all(system.settings, Names(system.settings.topic_prefix).segment_changes)
    return [c for c in (SegmentChange.model_validate_json(v) for _, v in records) if c.customer_id == customer]


def test_an_override_wins_survives_a_rebalance_and_a_kill_expires_and_clears(system, tmp_path, capsys):
    assert system.run("rules", "apply", str(RETAIL)) == 0
    first = system.start_worker(data_dir=tmp_path / "a")
    system.start_actions(data_dir=tmp_path / "actions", actions_replay_horizon="0d")
    (tmp_path / "tx.csv").write_text(TX)
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("tick", "--to", "2026-06-30") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    assert _value(system, "A") == "low_value"

    capsys.readouterr()
    assert system.run("override", "set", "A", "value", "platinum", "--reason", "x") == 1
    assert "dimension value has no segment 'platinum'" in capsys.readouterr().err
    assert system.run("override", "set", "A", "value", "high_value", "--reason", "key account", "--by", "alice",
                      "--until", "2026-07-15") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    assert _value(system, "A") == "high_value"
    last = _changes(system, "A")[-1]
    assert (last.from_segment, last.to_segment, last.cause) == ("low_value", "high_value", "override")
    assert last.condition == "override by alice until 2026-07-15: key account"
    alerts = [Alert.model_validate_json(v) for _, v in consume_all(system.settings,
                                                                   Names(system.settings.topic_prefix).alerts)]
    assert [a.customer_id for a in alerts] == ["A"]  # the manager alert of entering high_value, once
    capsys.readouterr()
    assert system.run("override", "list") == 0
    listed = capsys.readouterr().out
    assert "A" in listed
    assert "high_value" in listed
    assert "2026-07-15" in listed
    assert "alice" in listed

    # A second worker joins (rebalance), then the first dies: the survivor recovers the pin from the changelog
    system.start_worker(data_dir=tmp_path / "b")
    system.kill_worker(first, signal.SIGKILL)
    (tmp_path / "later.csv").write_text(LATER)
    assert system.run("import", "transactions", str(tmp_path / "later.csv"), "--quiet") == 0
    assert system.run("tick", "--to", "2026-07-14") == 0
    assert system.run("wait", "--timeout", "180") == 0
    assert _value(system, "A") == "high_value"  # a new purchase and a day later: still pinned

    capsys.readouterr()
    assert system.run("customer", "A") == 0
    assert "    pinned: override by alice until 2026-07-15: key account (the rules say low_value)" in \
        capsys.readouterr().out

    assert system.run("tick", "--to", "2026-07-15") == 0  # its day: it expires with no event
    assert system.run("wait", "--timeout", "120") == 0
    assert _value(system, "A") == "low_value"
    last = _changes(system, "A")[-1]
    assert (last.from_segment, last.to_segment, last.cause) == ("high_value", "low_value", "time")

    assert system.run("override", "set", "A", "value", "churn_risk", "--reason", "asked to leave") == 0
    assert system.run("wait", "--timeout", "120") == 0
    assert _value(system, "A") == "churn_risk"
    assert system.run("override", "clear", "A", "value", "--reason", "stays after all") == 0
    assert system.run("wait", "--timeout", "120") == 0
    assert _value(system, "A") == "low_value"
    assert _changes(system, "A")[-1].cause == "override"

    # A ruleset that drops the pinned segment leaves the pin visible as stale, not applied
    assert system.run("override", "set", "B", "value", "mid_value", "--reason", "trial") == 0
    assert system.run("wait", "--timeout", "120") == 0
    assert _value(system, "B") == "mid_value"
    v2 = tmp_path / "v2.yaml"
    v2.write_text(RETAIL.read_text().replace("version: 1", "version: 2").replace("name: mid_value", "name: middle"))
    assert system.run("rules", "apply", str(v2)) == 0
    assert system.run("wait", "--timeout", "120") == 0
    assert _value(system, "B") == "low_value"
    capsys.readouterr()
    assert system.run("override", "list") == 0
    assert "(stale: not in the active ruleset)" in capsys.readouterr().out
    assert system.run("customer", "B") == 0
    assert "stale override: value -> mid_value" in capsys.readouterr().out
