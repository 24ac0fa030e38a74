"""`segmenter report` on the real broker and Redis: the Pareto table as a table, CSV and JSON, the movement read from
the segment-changes topic (`--since`), and `--chart` a valid PNG and SVG."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from decimal import Decimal

import orjson

from tests.integration.helpers import RETAIL, stream_in

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
