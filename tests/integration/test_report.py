"""`segmenter report` on the real broker and Redis: the Pareto table as a table, CSV and JSON, the movement read from
the segment-changes topic (`--since`), and `--chart` a valid PNG and SVG."""

from __future__ import annotations

import asyncio
import csv
import io
import xml.etree.ElementTree as ET
from decimal import Decimal

import orjson

from streams.kafka.topics import produce_records
from streams.names import Names
from tests.integration.helpers import RETAIL, stream_in, wait_until

TX = """customer_id,occurred_at,amount,kind,event_id
A,2026-06-01,100,,a1
B,2026-06-01,300,,b1
C,2026-06-01,600,,c1
A,2026-06-20,5000,,a2
"""


def test_report_formats_movement_and_charts(system, tmp_path, capsys):
    stream_in(system, tmp_path, RETAIL, TX)

    capsys.readouterr()
    assert system.run("report", "--format", "json", "--since", "7d") == 0
    doc = orjson.loads(capsys.readouterr().out)
    value = [r for r in doc["segments"] if r["dimension"] == "value"]
    assert [(r["segment"], r["customers"]) for r in value] == [("unclassified", 1), ("low_value", 2)]
    assert Decimal(value[0]["amount_12m"]) == Decimal("5100.00")  # A's 5,100 falls in a gap of the retail table
    assert value[-1]["cumulative_share"] == 100.0
    # within 7 days of the newest stream time (06-30): only A's move of 06-20 is older; the first classifications
    # of 06-01 too; nothing moved in the last week
    assert doc["movement"]["moves"] == []
    assert system.run("report", "--format", "json", "--since", "30d") == 0
    moves = {(m["from"], m["to"]): (m["customers"], Decimal(m["amount_12m"]))
             for m in orjson.loads(capsys.readouterr().out)["movement"]["moves"]}
    assert moves[("low_value", "unclassified")] == (1, Decimal("5100.00"))  # A, with its amount then
    assert moves[("(none)", "low_value")][0] == 3

    assert system.run("report", "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["segment"] for r in rows] == ["unclassified", "low_value"]
    assert system.run("report", "--since", "30d") == 0
    assert "low_value        unclassified              1         5,100.00" in capsys.readouterr().out

    png, svg = tmp_path / "report.png", tmp_path / "report.svg"
    assert system.run("report", "--since", "30d", "--chart", str(png)) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000
    assert system.run("report", "--chart", str(svg)) == 0
    assert ET.parse(svg).getroot().tag.endswith("svg")  # noqa: S314 - a file this test just wrote
    assert system.run("report", "--chart", str(tmp_path / "report.gif")) == 1
    assert "write a .png or an .svg file" in capsys.readouterr().err


def test_kpis_and_data_quality_from_one_pass_over_the_customers(system, tmp_path, capsys):
    """Average order value and repurchase rate per segment, and the data's completeness, against the same figures
    worked out by hand from the input; refused records by topic and reason."""
    tx = TX + "D,2026-06-02,40,,d1\nD,2026-06-03,60,,d2\nD,2026-06-04,50,,d3\n"
    (tmp_path / "p.csv").write_text("customer_id,type,industry,region\nA,enterprise,retail,north\n"
                                    "B,individual,,east\n")
    stream_in(system, tmp_path, RETAIL, tx)
    assert system.run("import", "profiles", str(tmp_path / "p.csv"), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0
    names = Names(system.settings.topic_prefix)  # and a record the worker must refuse, with its reason
    asyncio.run(produce_records(system.settings, [(names.transactions, b"E", b'{"customer_id": "E"}', None)]))
    assert system.run("wait", "--timeout", "120") == 0

    capsys.readouterr()
    assert system.run("report", "--kpis", "--format", "json", "--quiet") == 0
    doc = orjson.loads(capsys.readouterr().out)
    kpis = {(k["dimension"], k["segment"]): k for k in doc["kpis"]}
    # low_value: B (1 purchase, 300), C (1, 600), D (3, 150): 5 purchases, 1,050 -> 210.00 a purchase; D bought again
    assert kpis[("value", "low_value")] == {"dimension": "value", "segment": "low_value", "customers": 3,
                                             "purchases_12m": 5, "avg_order_value_12m": "210.00",
                                             "repurchase_rate": round(1 / 3, 4)}
    assert kpis[("value", "unclassified")]["avg_order_value_12m"] == "2550.00"  # A: 5,100 in two purchases
    assert "cohorts" not in doc  # only with --since
    kept = {(r["dimension"], r["segment"]): r for r in doc["segments"]}  # the sums the workers keep, no pass
    for key, kpi in kpis.items():
        assert {k: kept[key][k] for k in kpi} == kpi
    assert doc["quality"] == {"customers": 4, "without_profile": 2, "missing": {"industry": 3, "region": 2,
                                                                                "size": 4, "type": 2},
                              "no_purchase_12m": 0, "no_interaction_12m": 4, "without_stream_time": 0}

    # the members of each segment 15 days before the newest stream time (06-30): A, B, C and D in low_value (A then
    # moved to unclassified on 06-20, whose members' average amount is greater: up)
    assert system.run("report", "--kpis", "--since", "15d", "--format", "json", "--quiet") == 0
    cohorts = orjson.loads(capsys.readouterr().out)["cohorts"]
    assert cohorts["since"].startswith("2026-06-15")
    assert cohorts["unknown"] == 0
    assert cohorts["segments"] == [{"dimension": "value", "segment": "low_value", "members": 4, "stayed": 3,
                                    "moved_up": 1, "moved_down": 0, "left": 0, "churned": 0}]
    assert system.run("report", "--kpis", "--since", "15d", "--quiet") == 0
    assert "value          low_value                4         3         1          0      0        0" in \
        capsys.readouterr().out

    assert system.run("quality", "--format", "json", "--quiet") == 0
    quality = orjson.loads(capsys.readouterr().out)
    assert quality["without_profile"] == 2
    assert quality["dead_letters"] == [{"topic": names.transactions, "reason": "bad_input",
                                        "error_class": "ValidationError", "records": 1}]
    assert system.run("quality", "--quiet") == 0
    table = capsys.readouterr().out
    assert "profile without industry" in table
    assert "bad_input" in table

    (tmp_path / "again.csv").write_text("customer_id,occurred_at,amount,kind,event_id\n"  # D's three, re-exported
                                        "D,2026-06-02,40,,d1\nD,2026-06-03,60,,d2\nD,2026-06-04,50,,d3\n")
    assert system.run("import", "transactions", str(tmp_path / "again.csv"), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0

    def left_out():
        capsys.readouterr()
        assert system.run("quality", "--format", "json", "--quiet") == 0
        return orjson.loads(capsys.readouterr().out)["left_out"]

    found = wait_until(left_out, lambda d: d["duplicate"] >= 3, 30, "the repeats counted by the worker")
    assert found["duplicate"] == 3
    assert found["workers"] == 1
