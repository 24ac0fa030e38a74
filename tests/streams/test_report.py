"""`segmenter report`'s Pareto table: per dimension, segments by amount, with shares and cumulative shares."""

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
from wcwidth import wcswidth

from segmenter.rules import load_ruleset
from streams.cli.report import pareto_table
from streams.readmodel.pareto import described, pareto, with_kpis
from streams.readmodel.scan import started


def test_the_pareto_table_says_what_share_of_revenue_each_class_holds():
    rows = [("abc", "B", 50, Decimal("150.00")), ("abc", "A", 20, Decimal("800.00")),
            ("abc", "C", 30, Decimal("50.00")), ("value", "low", 3, Decimal("9.50"))]
    lines = pareto_table(pareto(rows)).splitlines()
    assert lines[0].split() == ["dimension", "segment", "customers", "share", "amount_12m", "share",
                                "cum.", "customers", "cum.", "amount", "avg.", "order", "repurchase", "label"]
    assert [line.split() for line in lines[1:]] == [  # no purchase counts given: no average order, no repurchase
        ["abc", "A", "20", "20.0%", "800.00", "80.0%", "20.0%", "80.0%", "-", "-"],  # a fifth of customers: 80 %
        ["abc", "B", "50", "50.0%", "150.00", "15.0%", "70.0%", "95.0%", "-", "-"],
        ["abc", "C", "30", "30.0%", "50.00", "5.0%", "100.0%", "100.0%", "-", "-"],
        ["value", "low", "3", "100.0%", "9.50", "100.0%", "100.0%", "100.0%", "-", "-"],
    ]
    kept = {"abc": {b"A\x1fp": b"40", b"A\x1fr": b"5"}}  # the workers' sums: 40 purchases, 5 of 20 bought again
    (first, *_) = pareto_table(with_kpis(pareto(rows), kept, 2)).splitlines()[1:]
    assert first.split()[-2:] == ["20.00", "25.0%"]


def test_labels_line_up_in_terminal_columns_and_strategies_follow_the_table():
    """A Chinese character takes two columns: the numbers after a Chinese segment start where the others' do."""
    ruleset = load_ruleset((Path(__file__).resolve().parents[2] / "examples/rules/零售价值分层.yaml").read_text())
    rows = [("价值分层", "高价值客户", 2, Decimal("90.00")), ("价值分层", "未分类客户", 1, Decimal("0")),
            ("value", "low", 3, Decimal("9.50"))]
    lines = pareto_table(described(pareto(rows), [ruleset])).splitlines()
    assert [wcswidth(line.split("%")[0]) for line in lines[1:4]] == [wcswidth(lines[1].split("%")[0])] * 3
    assert lines[1].startswith("value ")  # sorted by dimension name
    assert lines[3].endswith("  未分类（近12个月无购买）")  # the default's label
    assert "  价值分层.高价值客户: 专属客户经理，每月回访，优先体验新品" in lines
    assert not any("value.low:" in line for line in lines)  # no strategy written, none shown


def _entry(at: str, **doc) -> bytes:
    return f"id{at} {orjson.dumps({'at': at, **doc}).decode()}".encode()


def test_where_a_customer_started_a_span_is_read_back_from_its_story():
    since = datetime.fromisoformat("2026-06-15T00:00:00+00:00")
    now = {"value": "high", "life": "active"}
    story = [_entry("2026-06-20T00:00:00+00:00", dimension="value", **{"from": "mid", "to": "high"}),
             _entry("2026-06-18T00:00:00+00:00", tag="vip", added=True),
             _entry("2026-06-16T00:00:00+00:00", dimension="value", **{"from": "low", "to": "mid"}),
             _entry("2026-06-16T00:00:00+00:00", dimension="life", **{"from": None, "to": "active"}),
             _entry("2026-05-01T00:00:00+00:00", dimension="value", **{"from": None, "to": "low"})]
    # the oldest change within the span says where it was: low; life had no segment then
    assert started(story, now, since, keep=5) == {"value": "low", "life": None}
    assert started([], now, since, keep=5) == now  # no change since: where it is now
    # a full list all within the span: earlier changes in the span may have been dropped
    assert started(story[:4], now, since, keep=4) is None
    assert started(story[:4], now, since, keep=5) == {"value": "low", "life": None}
    assert started(story, now, since, keep=0) is None  # no story kept at all
