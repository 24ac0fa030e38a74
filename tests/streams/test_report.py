"""`segmenter report`'s Pareto table: per dimension, segments by amount, with shares and cumulative shares."""

from decimal import Decimal

from streams.cli.report import pareto_table
from streams.readmodel.pareto import pareto


def test_the_pareto_table_says_what_share_of_revenue_each_class_holds():
    rows = [("abc", "B", 50, Decimal("150.00")), ("abc", "A", 20, Decimal("800.00")),
            ("abc", "C", 30, Decimal("50.00")), ("value", "low", 3, Decimal("9.50"))]
    lines = pareto_table(pareto(rows)).splitlines()
    assert lines[0].split() == ["dimension", "segment", "customers", "share", "amount_12m", "share",
                                "cum.", "customers", "cum.", "amount"]
    assert [line.split() for line in lines[1:]] == [
        ["abc", "A", "20", "20.0%", "800.00", "80.0%", "20.0%", "80.0%"],  # A's fifth of customers: 80 % of revenue
        ["abc", "B", "50", "50.0%", "150.00", "15.0%", "70.0%", "95.0%"],
        ["abc", "C", "30", "30.0%", "50.00", "5.0%", "100.0%", "100.0%"],
        ["value", "low", "3", "100.0%", "9.50", "100.0%", "100.0%", "100.0%"],
    ]
