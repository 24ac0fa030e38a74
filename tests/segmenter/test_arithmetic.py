"""Arithmetic in conditions and the previous period's metrics: exact, unit-checked, false where a value is missing
or a divisor is zero, refused with a column where it has no meaning. (Due days over them are checked by the
property tests, which run every example ruleset, ``trend.yaml`` included.)"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest

from segmenter.classify import explain
from segmenter.errors import InvalidRuleError
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.rules.check import check_ruleset
from segmenter.rules.syntax import Arith, BoolOp, Compare, Const, Name, parse


def one(when: str) -> object:
    text = f"id: t\nversion: 1\ndimensions:\n  d:\n    segments:\n      - name: s\n        when: {json.dumps(when)}\n" \
           "    default: other\n"
    return load_ruleset(text, "r.yaml")


def holds(when: str, **values: object) -> bool:
    return one(when).classify_all(values) == ("s",)  # type: ignore[attr-defined]


def test_precedence_parentheses_and_chained_comparisons() -> None:
    node = parse("(purchases_6m + 1) * 2 > purchases_12m - 3 / 2 and (amount_6m > 1 or amount_12m > 2)")
    assert isinstance(node, BoolOp)
    assert node.op == "and"
    compare = node.items[0]
    assert isinstance(compare, Compare)
    assert compare.text == "(purchases_6m + 1) * 2 > purchases_12m - 3 / 2"
    assert compare.left == Arith("*", Arith("+", Name("purchases_6m", 2), Const(Decimal(1), 17), 15),
                                 Const(Decimal(2), 22), 20)
    assert isinstance(compare.right, Arith)
    assert compare.right.op == "-"  # 3 / 2 binds first
    assert isinstance(node.items[1], BoolOp)  # a group of conditions, not arithmetic


def test_money_is_exact_in_minor_units_and_constants_take_the_unit_they_meet() -> None:
    # 0.1 * 3 is 0.3 exactly; amounts are cents: 10.00 * 0.3 == 3.00
    assert holds("amount_6m * (0.1 * 3) == 3", amount_6m=1000)
    assert holds("amount_6m < 0.5 * amount_prev_6m", amount_6m=4999, amount_prev_6m=10000)
    assert not holds("amount_6m < 0.5 * amount_prev_6m", amount_6m=5000, amount_prev_6m=10000)
    assert holds("amount_12m - 100 >= amount_6m", amount_12m=20000, amount_6m=10000)  # 100 is 100.00: 10000 cents
    assert not holds("amount_12m - 100 >= amount_6m", amount_12m=19999, amount_6m=10000)
    assert holds("amount_12m / purchases_12m >= 33.34", amount_12m=10002, purchases_12m=3)  # 33.34 per order
    assert holds("amount_6m / amount_12m > 0.3", amount_6m=1000, amount_12m=3000)  # a share: a number
    assert holds("purchases_6m / purchases_12m == 1 / 3", purchases_6m=1, purchases_12m=3)


def test_a_missing_value_or_a_zero_divisor_makes_the_comparison_false() -> None:
    assert not holds("amount_12m / purchases_12m > 0", amount_12m=100, purchases_12m=0)
    assert not holds("amount_12m / purchases_12m <= 0", amount_12m=100, purchases_12m=0)
    assert not holds("satisfaction_avg_12m * 2 > 1", satisfaction_avg_12m=None)
    assert holds("not (amount_12m / purchases_12m > 0)", amount_12m=100, purchases_12m=0)


@pytest.mark.parametrize(("when", "message"), [
    ("amount_6m * amount_12m > 1", "column 11: money * money has no meaning"),
    ("purchases_6m / amount_6m > 1", "number / money has no meaning"),
    ("amount_6m > purchases_6m + 1", "compares money with number"),
    ("amount_6m + purchases_6m > 1", "money + number has no meaning"),
    ("days_since_last_purchase * 2 > 30", "days_since_last_purchase is a day count"),
    ("rfm_r + 1 > 3", "rfm_r is a population rank"),
    ("profile.region + 1 > 3", "profile.region is text"),
    ("amount_12m / (2 - 2) > 1", "column 12: divided by zero"),
    ("amount_12m > 1 / 0", "a constant divided by zero"),
    ("2 * 3 > 5", "compares two constants"),
    ("purchases_6m * > 1", "column 16: expected a metric"),
    ("(purchases_6m + 1 > 1", "expected ')'"),
    ("-" * 40 + "purchases_6m > 1", "nested more than 32 deep"),
    ("(" * 40 + "purchases_6m + 1" + ")" * 40 + " > 1", "nested more than 32 deep"),
])
def test_meaningless_arithmetic_is_refused_with_its_column(when: str, message: str) -> None:
    with pytest.raises(InvalidRuleError, match=re.escape(message)):
        one(when)


def test_explanations_and_the_gap_check_speak_of_arithmetic_as_written() -> None:
    ruleset = one("amount_6m < 0.5 * amount_prev_6m")
    policy = Policy()
    (why,) = explain(ruleset, {"amount_6m": 9000, "amount_prev_6m": 10000}, policy)  # type: ignore[arg-type]
    assert why.segment == "other"
    assert why.rejected == ("s: needs amount_6m < 0.5 * amount_prev_6m, has amount_6m=90.00, amount_prev_6m=100.00",)
    (report,) = check_ruleset(ruleset)  # type: ignore[arg-type]
    assert report.skipped is not None
    assert "computes" in report.skipped


def test_the_previous_period_is_the_long_window_less_the_short() -> None:
    ruleset = one("purchases_prev_6m >= 2 and amount_prev_6m > amount_6m")
    # totals: long (purchases, amount, ...), short (purchases, amount, ...)
    long_, short = (5, 90000, 0, 0, 0, 0, 0), (3, 30000, 0, 0)
    assert ruleset.classify_totals(long_, short, 1, 2, 3, {}) == ("s",)  # type: ignore[attr-defined]
    assert ruleset.classify_totals(long_, (4, 30000, 0, 0), 1, 2, 3, {}) == ("other",)  # type: ignore[attr-defined]
