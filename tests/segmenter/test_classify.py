from datetime import date
from pathlib import Path

import pytest

from segmenter.classify import classify, classify_values, due_day, explain
from segmenter.metrics import compute
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.state import EMPTY, apply
from tests.segmenter.helpers import day, purchase

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"
RETAIL = load_ruleset((EXAMPLES / "retail-value.yaml").read_text())
LIFECYCLE = load_ruleset((EXAMPLES / "lifecycle.yaml").read_text())
POLICY = Policy()


def values(p12: int, amount_yuan: int, p6: int | None = None) -> dict:
    return {"purchases_12m": p12, "purchases_6m": p12 if p6 is None else p6, "amount_12m": amount_yuan * 100}


@pytest.mark.parametrize(("p12", "amount", "expected"), [
    (10, 10000, "high_value"),
    (9, 10000, "unclassified"),  # a gap of the seed table
    (10, 9999, "mid_value"),
    (9, 9999, "mid_value"),
    (5, 5000, "mid_value"),
    (5, 4999, "unclassified"),
    (4, 4999, "low_value"),
    (4, 5000, "unclassified"),
    (1, 0, "low_value"),
    (0, 0, "unclassified"),
])
def test_retail_value_at_the_seed_thresholds(p12, amount, expected):
    assert classify_values(RETAIL, values(p12, amount)) == (expected,)


def test_money_thresholds_are_exact_to_the_cent():
    assert classify_values(RETAIL, {**values(10, 0), "amount_12m": 999_999}) == ("mid_value",)
    assert classify_values(RETAIL, {**values(10, 0), "amount_12m": 1_000_000}) == ("high_value",)


def test_churn_risk_wins_when_nothing_was_bought_in_six_months():
    assert classify_values(RETAIL, values(12, 20000, p6=0)) == ("churn_risk",)


def test_explanation_names_the_condition_values_and_earlier_misses():
    (exp,) = explain(RETAIL, values(12, 20000, p6=3), POLICY)
    assert exp.segment == "high_value"
    assert exp.condition == "purchases_12m >= 10 and amount_12m >= 10000"
    assert {k: str(v) for k, v in exp.metrics.items()} == {"purchases_12m": "12", "amount_12m": "20000.00"}
    assert exp.rejected == ("churn_risk: needs purchases_6m == 0, has purchases_6m=3, purchases_12m=12",)


def test_default_explanation_lists_every_segment_that_missed():
    (exp,) = explain(RETAIL, values(0, 0), POLICY)
    assert (exp.segment, exp.condition) == ("unclassified", "default")
    assert len(exp.rejected) == 4


def test_a_missing_value_makes_every_comparison_false():
    assert classify_values(LIFECYCLE, {"days_since_first_purchase": None,
                                       "days_since_last_purchase": None}) == ("prospect",)


def _three_purchases():
    state = EMPTY
    for i, when in enumerate(["2025-10-01", "2025-12-15", "2026-01-31"]):
        state, _ = apply(state, purchase(when, 100, f"e{i}"), day(when), POLICY)
    return state


def test_customer_becomes_churn_risk_on_the_day_its_last_purchase_leaves_six_months():
    state = _three_purchases()
    as_of = day("2026-02-01")
    due = due_day(RETAIL, state, as_of, POLICY)
    assert date.fromordinal(due).isoformat() == "2026-04-01"  # 2025-10-01 leaves 6m on 04-01
    assert classify(RETAIL, state, due - 1, POLICY) == ("low_value",)
    churn_day = day("2026-07-31")  # 2026-01-31 leaves the 6-month window (clamped month ends)
    assert classify(RETAIL, state, churn_day - 1, POLICY) == ("low_value",)
    assert classify(RETAIL, state, churn_day, POLICY) == ("churn_risk",)


def test_due_day_is_never_late_for_time_driven_changes():
    state, _ = apply(EMPTY, purchase("2026-01-10", 100, "a"), day("2026-01-10"), POLICY)
    for ruleset in (RETAIL, LIFECYCLE):
        as_of = day("2026-01-10")
        current = classify(ruleset, state, as_of, POLICY)
        for _ in range(20):
            due = due_day(ruleset, state, as_of, POLICY)
            if due is None:
                break
            for d in range(as_of + 1, due):  # nothing changes before the due day
                assert classify(ruleset, state, d, POLICY) == current
            as_of, current = due, classify(ruleset, state, due, POLICY)
        assert due is None or due > day("2027-01-10")


def test_lifecycle_moves_from_new_to_churned_with_time_alone():
    state, _ = apply(EMPTY, purchase("2026-01-01", 10, "a"), day("2026-01-01"), POLICY)
    seen = []
    as_of = day("2026-01-01")
    while as_of is not None:
        seen.append(classify(LIFECYCLE, state, as_of, POLICY)[0])
        as_of = due_day(LIFECYCLE, state, as_of, POLICY)
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == ["new", "active", "silent", "churned"]


def test_metrics_of_the_core_feed_the_rules_directly():
    state, _ = apply(EMPTY, purchase("2026-06-01", 6000, "a"), day("2026-06-01"), POLICY)
    assert classify_values(RETAIL, compute(state, day("2026-06-30"), POLICY)) == ("unclassified",)


def test_with_the_current_classification_the_due_day_is_the_day_it_changes():
    """Departures from the six-month window that leave the segment as it is wake nobody."""
    state = _three_purchases()
    as_of = day("2026-02-01")
    current = classify(RETAIL, state, as_of, POLICY)
    assert due_day(RETAIL, state, as_of, POLICY, current=current) == day("2026-07-31")  # churn_risk then
    assert due_day(RETAIL, state, as_of, POLICY, current=current, track_amount=True) == day("2026-07-31")
    assert date.fromordinal(due_day(RETAIL, state, day("2026-08-01"), POLICY, current=("churn_risk",),
                                    track_amount=True)).isoformat() == "2026-10-01"  # amount_12m moves
