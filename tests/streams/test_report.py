"""`segmenter report`'s Pareto table: per dimension, segments by amount, with shares and cumulative shares."""

from decimal import Decimal
from pathlib import Path

from wcwidth import wcswidth

from segmenter.rules import load_ruleset
from streams.cli.report import pareto_table
from streams.readmodel.pareto import described, pareto


def test_the_pareto_table_says_what_share_of_revenue_each_class_holds():
    rows = [("abc", "B", 50, Decimal("150.00")), ("abc", "A", 20, Decimal("800.00")),
            ("abc", "C", 30, Decimal("50.00")), ("value", "low", 3, Decimal("9.50"))]
    lines = pareto_table(pareto(rows)).splitlines()
    assert lines[0].split() == ["dimension", "segment", "customers", "share", "amount_12m", "share",
                                "cum.", "customers", "cum.", "amount", "label"]
    assert [line.split() for line in lines[1:]] == [
        ["abc", "A", "20", "20.0%", "800.00", "80.0%", "20.0%", "80.0%"],  # A's fifth of customers: 80 % of revenue
        ["abc", "B", "50", "50.0%", "150.00", "15.0%", "70.0%", "95.0%"],
        ["abc", "C", "30", "30.0%", "50.00", "5.0%", "100.0%", "100.0%"],
        ["value", "low", "3", "100.0%", "9.50", "100.0%", "100.0%", "100.0%"],
    ]


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
