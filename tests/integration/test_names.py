"""Names as the guides write them (高价值客户): a ruleset in Chinese through the whole stack, with the labels and
strategies it writes: the worker's export equals `classify`, an override by a Chinese dimension and segment, the
customer's story, the report, the API's paths (URL-encoded) and the dashboard."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.integration.helpers import ROOT, classify_csv, read_csv, row_differences, serving, wait_until

pytestmark = pytest.mark.integration

RULES = ROOT / "examples" / "rules" / "零售价值分层.yaml"
PROFILES = """customer_id,customer_type,industry,region
甲,enterprise,制造业,north
B,individual,零售,east
"""
# 甲 buys 12 times for 12,000 in the last 12 months: 高价值客户; B twice, five months ago and a year ago: its
# amount in the last six months (50) is under half that of the six before (400): 交易量骤降
# 甲 buys books (图书) in 2026 and toys (玩具) in 2025; B's purchases carry a profit of a third
TX = "customer_id,occurred_at,amount,kind,event_id,category,profit\n" + "".join(
    f"甲,2026-{month:02d}-05,1000,,j{month},图书,\n" for month in range(1, 7)) + "".join(
    f"甲,2025-{month:02d}-05,1000,,k{month},玩具,\n" for month in range(7, 13)) + \
    "B,2025-08-01,200,,b1,,70\nB,2025-09-01,200,,b2,,70\nB,2026-02-01,50,,b3,,10\n"


def test_a_chinese_ruleset_runs_through_the_stack(system, tmp_path, capsys):
    paths = {"transactions": tmp_path / "tx.csv", "profiles": tmp_path / "p.csv"}
    paths["transactions"].write_text(TX)
    paths["profiles"].write_text(PROFILES)
    assert system.run("rules", "apply", str(RULES)) == 0
    system.start_worker()
    assert system.run("import", "profiles", str(paths["profiles"]), "--quiet") == 0
    assert system.run("import", "transactions", str(paths["transactions"]), "--quiet") == 0
    assert system.run("tick", "--to", "2026-06-30T23:59:59+00:00") == 0
    assert system.run("wait", "--timeout", "120") == 0

    exported = tmp_path / "export.csv"
    assert system.run("export", "--out", str(exported)) == 0
    got = read_csv(exported)
    expected = classify_csv(system.run, paths, "2026-06-30", tmp_path / "classify.csv", rules=RULES)
    assert row_differences(got, expected) == {}
    assert (got["甲"]["价值分层"], got["B"]["交易趋势"]) == ("高价值客户", "交易量骤降")
    assert "行业:制造业" in got["甲"]["tags"]
    assert "偏好:图书" in got["甲"]["tags"]  # 6,000 in books against 6,000 in toys, books with the first name
    assert (got["甲"]["产品偏好"], got["B"]["产品偏好"]) == ("图书爱好者", "其他")  # B's margin 0.33, profit 150

    capsys.readouterr()
    assert system.run("override", "set", "B", "价值分层", "高价值客户", "--reason", "大客户签约", "--by", "王芳") == 0
    assert system.run("override", "set", "B", "价值分层", "白金客户", "--reason", "x") == 1
    assert "dimension 价值分层 has no segment '白金客户'" in capsys.readouterr().err
    assert system.run("wait", "--timeout", "120") == 0

    capsys.readouterr()
    assert system.run("customer", "甲") == 0
    story = capsys.readouterr().out
    assert "价值分层 (客户价值): 高价值客户" in story
    assert "strategy: 专属客户经理，每月回访，优先体验新品" in story

    assert system.run("report") == 0
    report = capsys.readouterr().out
    assert "价值分层.高价值客户: 专属客户经理，每月回访，优先体验新品" in report

    with serving(system.settings) as api:
        wait_until(lambda: api.get("/customers/B").json()["segments"]["价值分层"], lambda s: s == "高价值客户", 30,
                   "the override by Chinese names applied")
        members = api.get(f"/segments/{quote('价值分层')}/{quote('高价值客户')}/members").json()["members"]
        assert sorted(members) == ["B", "甲"]
        rows = {r["segment"]: r for r in api.get("/segments").json()["价值分层"]}
        assert rows["高价值客户"]["strategy"] == "专属客户经理，每月回访，优先体验新品"
        # 甲's 12 purchases and B's 3 (pinned here), 12,450 over 15: both bought again
        assert (rows["高价值客户"]["purchases_12m"], rows["高价值客户"]["repurchase_rate"]) == (15, 1.0)
        assert rows["高价值客户"]["avg_order_value_12m"] == "830.00"
        assert api.get(f"/customers/{quote('甲')}").json()["dimensions"][0]["dimension_label"] == "客户价值"
        page = api.get("/").text
        assert "交易量骤降" in page
        assert "复购率" in page
        assert "客户经理一周内联系，了解原因" in page
