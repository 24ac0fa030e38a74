"""Rule history and rollback: every version applied is kept with who, when and why; a rollback applies an old
text as a new version; a version is never rewritten, by the CLI, the worker and the action worker alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from schemas.ruleset import RuleSetApplied
from segmenter.rules import load_ruleset
from streams.kafka.control import RulesRefusedError, _claim_version, apply_rules, latest_rules, rules_history
from streams.kafka.reading import read_topic
from streams.kafka.topics import produce_records
from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import RETAIL, wait_until

V1 = RETAIL.read_text()
V2 = V1.replace("version: 1", "version: 2").replace("amount_12m >= 10000", "amount_12m >= 8000")
TX = """customer_id,occurred_at,amount,kind,event_id
A,2026-06-01,9000,,a1
""" + "".join(f"A,2026-05-{d:02d},1,,a{d + 1}\n" for d in range(1, 10))


def test_history_rollback_and_a_version_never_rewritten(system, tmp_path, capsys):
    v1, v2, v1_changed = tmp_path / "v1.yaml", tmp_path / "v2.yaml", tmp_path / "v1-changed.yaml"
    v1.write_text(V1)
    v2.write_text(V2)
    v1_changed.write_text(V1.replace("amount_12m >= 10000", "amount_12m >= 5000"))
    assert system.run("rules", "apply", str(v1), "--author", "alice", "--message", "first tiers") == 0
    assert system.run("rules", "apply", str(v1)) == 0  # the same text again: nothing to refuse
    capsys.readouterr()
    assert system.run("rules", "apply", str(v1_changed)) == 1
    err = capsys.readouterr().err
    assert "retail-value v1 was applied on" in err
    assert "by alice with other content, and a version is never rewritten: give the changed ruleset version 2" in err
    assert system.run("rules", "apply", str(v2), "--author", "bob", "--message", "lower the bar") == 0

    system.start_worker()
    system.start_actions(actions_replay_horizon="0d")
    tx = tmp_path / "tx.csv"
    tx.write_text(TX)
    assert system.run("import", "transactions", str(tx), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0
    view = ReadModel.of(system.settings).customer("A")
    assert view is not None
    assert (view.doc["ruleset"], view.segments["value"]) == ("retail-value@2", "high_value")  # 9,009 >= 8,000

    assert system.run("rules", "rollback", "retail-value", "1", "--author", "carol") == 0
    assert system.run("wait", "--timeout", "120") == 0
    view = ReadModel.of(system.settings).customer("A")
    assert view is not None
    assert (view.doc["ruleset"], view.segments["value"]) == ("retail-value@3", "mid_value")  # v1's bar again
    capsys.readouterr()
    assert system.run("rules", "show") == 0
    assert capsys.readouterr().out.startswith("retail-value v3: value")

    # The customer's story under v3: why mid_value, and what each earlier segment needed
    assert system.run("customer", "A") == 0
    out = capsys.readouterr().out
    assert "customer A  (ruleset retail-value@3, as of stream day 2026-06-01" in out
    assert "  value: mid_value\n    because 5 <= purchases_12m <= 9" in out
    assert "    not churn_risk: needs purchases_6m == 0, has purchases_6m=10, purchases_12m=10\n" in out
    assert "    not high_value: needs amount_12m >= 10000, has purchases_12m=10, amount_12m=9009.00\n" in out
    assert system.run("customer", "A", "--json") == 0
    doc = orjson.loads(capsys.readouterr().out)
    dims = [(d["dimension"], d["segment"], len(d["rejected"])) for d in doc["dimensions"]]
    assert dims == [("value", "mid_value", 2)]
    assert doc["due"] > "2026-06-01"
    assert doc["then"]

    assert system.run("rules", "history", "retail-value") == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [line.split("  ") for line in lines if not line.startswith(" ")]
    assert [(h[0], h[2], h[3]) for h in heads] == [("retail-value v1", "alice", "first tiers"),
                                                   ("retail-value v2", "bob", "lower the bar"),
                                                   ("retail-value v3", "carol", "rollback to v1")]
    bar = "purchases_12m >= 10 and amount_12m >= "
    assert f"    ~ value.high_value: {bar}10000  ->  {bar}8000" in lines
    assert f"    ~ value.high_value: {bar}8000  ->  {bar}10000" in lines
    assert system.run("rules", "rollback", "retail-value", "9") == 1
    assert "retail-value v9 was never applied (applied versions: v1, v2, v3)" in capsys.readouterr().err

    # A control record produced by hand, not through `rules apply`: v3 with another bar. The worker and the
    # action worker keep the v3 they have.
    settings, names = system.settings, Names(system.settings.topic_prefix)
    v3_changed = V1.replace("version: 1", "version: 3").replace(">= 10000", ">= 8000")
    doc = orjson.dumps({"type": "rules", "yaml": v3_changed, "source": "by hand"})
    asyncio.run(produce_records(settings, [(names.control, b"rules", doc, p) for p in range(settings.partitions)]))
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    # each refused it, counted: the worker per partition (its counters, published every 5 s), the action worker
    wait_until(lambda: sum(c.get("rules_refused", 0) for c in ReadModel.of(settings).counters().values()),
               lambda n: n >= settings.partitions, 60, "the worker refusing the rewritten v3 on every partition")
    wait_until(lambda: orjson.loads((Path(settings.data_dir) / "actions.ready").read_text())["stats"],
               lambda stats: stats.get("rules_refused", 0) >= 1, 60, "the action worker refusing the rewritten v3")
    view = ReadModel.of(settings).customer("A")
    assert view is not None
    assert view.segments["value"] == "mid_value"  # still the bar of the v3 in force (10,000)


def test_two_applies_of_one_version_at_the_same_moment_publish_one_text(system):
    settings = system.settings
    a = load_ruleset(V1)
    b = load_ruleset(V1.replace("amount_12m >= 10000", "amount_12m >= 5000"))

    async def both() -> list[object]:
        return await asyncio.gather(apply_rules(settings, a, "a.yaml", "alice"),
                                    apply_rules(settings, b, "b.yaml", "bob"), return_exceptions=True)

    results = asyncio.run(both())
    refused = [r for r in results if isinstance(r, RulesRefusedError)]
    assert len(refused) == 1, results  # however the two interleaved: one wins, the other is refused
    winner = next(r for r in results if not isinstance(r, BaseException))
    loser = b if winner.yaml == a.source else a  # type: ignore[attr-defined]
    history = asyncio.run(rules_history(settings, "retail-value"))
    assert [doc.yaml for doc in history] == [winner.yaml]  # type: ignore[attr-defined]
    assert asyncio.run(latest_rules(settings))["retail-value"] == winner.yaml  # type: ignore[attr-defined]

    # the interleaving where both read the history before either wrote: the second to append reads the first
    # back, writes it again (compaction keeps a key's last record) and is refused, having published nothing else
    late = RuleSetApplied(id="retail-value", version=1, yaml=loser.source, source="late.yaml", author="carol",
                          applied_at=datetime.now(UTC))
    with pytest.raises(RulesRefusedError, match="at the same moment by"):
        asyncio.run(_claim_version(settings, late))
    names = Names(settings.topic_prefix)
    last = [value for key, value in asyncio.run(read_topic(settings, names.rules_history))
            if key == b"retail-value@1"][-1]
    assert orjson.loads(last)["yaml"] == winner.yaml  # type: ignore[attr-defined]  # what compaction keeps
    assert asyncio.run(latest_rules(settings))["retail-value"] == winner.yaml  # type: ignore[attr-defined]
