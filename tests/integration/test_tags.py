"""Tags on the real broker and Redis: by rule (copied from the profile, and by condition on its due day with no
event), by hand (added, surviving a worker's death, removed), in Redis' member sets, `export --tag`,
`customer`, `report` and `tag list`, and as tag changes on the segment-changes topic."""

from __future__ import annotations

import csv
import io
import signal

from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import ROOT, consume_all, tag_changes

CRM = ROOT / "examples" / "rules" / "crm.yaml"
PROFILES = """customer_id,customer_type,industry,region
A,enterprise,manufacturing,north
B,individual,,east
"""
TX = """customer_id,occurred_at,amount,kind,event_id
A,2026-06-01,100,,a1
B,2026-06-20,100,,b1
"""


def _tags(system, customer: str) -> list[str]:
    view = ReadModel.of(system.settings).customer(customer)
    assert view is not None
    return view.doc["tags"]


def _changes(system, customer: str):
    records = consume_all(system.settings, Names(system.settings.topic_prefix).segment_changes)
    return [(c.tag, c.added, c.cause) for c in tag_changes(records) if c.customer_id == customer]


def _exported(system, capsys, *args: str) -> dict[str, dict[str, str]]:
    capsys.readouterr()
    assert system.run("export", *args) == 0
    return {row["customer_id"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}


def test_tags_by_rule_on_their_due_day_and_by_hand_reach_redis_export_and_the_story(system, tmp_path, capsys):
    assert system.run("rules", "apply", str(CRM)) == 0
    first = system.start_worker(data_dir=tmp_path / "a")
    (tmp_path / "profiles.csv").write_text(PROFILES)
    (tmp_path / "tx.csv").write_text(TX)
    assert system.run("import", "profiles", str(tmp_path / "profiles.csv"), "--quiet") == 0
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("tick", "--to", "2026-08-30") == 0  # A: 90 days since its purchase, not more
    assert system.run("wait", "--timeout", "120") == 0
    assert _tags(system, "A") == ["industry:manufacturing", "region:north"]
    assert _tags(system, "B") == ["region:east"]  # no industry: the template gives no tag

    assert system.run("tick", "--to", "2026-08-31") == 0  # more than 90 days: by time alone
    assert system.run("wait", "--timeout", "120") == 0
    assert _tags(system, "A") == ["industry:manufacturing", "region:north", "risk:no_repurchase_3m"]
    assert ("risk:no_repurchase_3m", True, "time") in _changes(system, "A")
    assert _tags(system, "B") == ["region:east"]

    assert system.run("tag", "add", "B", "需求:降本增效", "--by", "alice", "--reason", "asked for a cost review") == 0
    assert system.run("tag", "add", "B", "has space", "--reason", "x") == 1
    assert "tag:" in capsys.readouterr().err
    assert system.run("wait", "--timeout", "120") == 0
    assert _tags(system, "B") == ["region:east", "需求:降本增效"]
    assert _changes(system, "B")[-1] == ("需求:降本增效", True, "manual")

    # Redis keeps a member set per tag: export --tag reads it, alone or with a segment
    assert set(_exported(system, capsys, "--tag", "region:north")) == {"A"}
    assert set(_exported(system, capsys, "--tag", "需求:降本增效")) == {"B"}
    assert set(_exported(system, capsys, "--tag", "region:east", "--dimension", "lifecycle",
                         "--segment", "active")) == {"B"}
    assert _exported(system, capsys)["A"]["tags"] == "industry:manufacturing;region:north;risk:no_repurchase_3m"

    capsys.readouterr()
    assert system.run("customer", "B") == 0
    story = capsys.readouterr().out
    assert "需求:降本增效 (tagged by alice: asked for a cost review)" in story
    # its last changes, newest first, from Redis' capped list: the manual tag, then the first classification
    recent = story.split("newest first:\n")[1].splitlines()
    assert "tag 需求:降本增效 added  (manual: tagged by alice: asked for a cost review)" in recent[0]
    assert any("lifecycle: ∅ -> new" in line for line in recent[1:])
    assert system.run("customer", "A") == 0
    assert ("risk:no_repurchase_3m (days_since_last_purchase > 90 and purchases_12m > 0 "
            "(days_since_last_purchase=91, purchases_12m=1))") in capsys.readouterr().out
    assert system.run("report") == 0
    report = capsys.readouterr().out
    assert "region:north" in report
    assert "需求:降本增效" in report
    assert system.run("tag", "list") == 0
    assert "alice" in capsys.readouterr().out

    # The worker that applied the manual tag dies; its successor has it from the changelog, and removes it
    system.start_worker(data_dir=tmp_path / "b")
    system.kill_worker(first, signal.SIGKILL)
    assert system.run("tag", "remove", "B", "需求:降本增效", "--reason", "done") == 0
    assert system.run("wait", "--timeout", "180") == 0
    assert _tags(system, "B") == ["region:east"]
    assert _changes(system, "B")[-1] == ("需求:降本增效", False, "manual")
    assert set(_exported(system, capsys, "--tag", "需求:降本增效")) == set()
