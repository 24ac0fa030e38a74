"""``segmenter.recovery.changes_back``: what the segment-change topic last said of a customer past its saved record,
put back to the record (cause ``recovery``), with the rules' explanation of the segment it holds."""

from pathlib import Path

from segmenter import step
from segmenter.policy import Policy
from segmenter.recovery import RECOVERED, changes_back
from segmenter.rules import load_ruleset
from tests.segmenter.helpers import day, purchase

POLICY = Policy()
RETAIL = load_ruleset((Path(__file__).resolve().parents[2] / "examples/rules/retail-value.yaml").read_text())
NOW = day("2026-06-30")


def _bought_once(ruleset) -> step.CustomerRecord:
    record, _, _ = step.on_fact(step.CustomerRecord(), purchase("2026-06-01", 100, "e1"), event_id="e1",
                                now_day=NOW, ruleset=ruleset, policy=POLICY)
    return record


def test_a_segment_published_past_the_saved_record_is_changed_back_to_it_with_the_rules_reason():
    record = _bought_once(RETAIL)
    assert dict(record.segments)["value"] == "low_value"
    (change,) = changes_back(record, {"value": "churn_risk"}, {}, key="p0e3", now_day=NOW, ruleset=RETAIL,
                             policy=POLICY)
    assert (change.dimension, change.before, change.after, change.cause) == ("value", "churn_risk", "low_value",
                                                                             "recovery")
    assert change.explanation.condition == "1 <= purchases_12m <= 4 and amount_12m < 5000"
    assert change.explanation.metrics["purchases_12m"] == 1
    # deterministic: the same stop, seen again, gives the same id; another epoch's correction is another change
    again = changes_back(record, {"value": "churn_risk"}, {}, key="p0e3", now_day=NOW, ruleset=RETAIL,
                         policy=POLICY)
    later = changes_back(record, {"value": "churn_risk"}, {}, key="p0e4", now_day=NOW, ruleset=RETAIL,
                         policy=POLICY)
    assert again[0].change_id("C1", record.ruleset) == change.change_id("C1", record.ruleset)
    assert later[0].change_id("C1", record.ruleset) != change.change_id("C1", record.ruleset)


def test_nothing_to_put_right_when_the_topic_already_says_what_the_record_holds():
    record = _bought_once(RETAIL)
    assert changes_back(record, {"value": "low_value"}, {}, key="k", now_day=NOW, ruleset=RETAIL,
                        policy=POLICY) == []
    # a dimension the record does not hold (a customer or a ruleset the saved state never saw): left to the replay
    assert changes_back(step.CustomerRecord(), {"value": "churn_risk"}, {}, key="k", now_day=NOW,
                        ruleset=RETAIL, policy=POLICY) == []
    assert changes_back(record, {"lifecycle": "active"}, {}, key="k", now_day=NOW, ruleset=RETAIL,
                        policy=POLICY) == []


def test_a_pinned_segment_is_explained_by_its_pin():
    pin = step.Override("value", "high_value", None, "alice", "key account", "o1")
    pinned, _ = step.on_override(_bought_once(RETAIL), pin, dimension="value", event_id="o1", now_day=NOW,
                                 ruleset=RETAIL, policy=POLICY)
    (change,) = changes_back(pinned, {"value": "low_value"}, {}, key="k", now_day=NOW, ruleset=RETAIL,
                             policy=POLICY)
    assert (change.before, change.after) == ("low_value", "high_value")
    assert change.explanation.condition == "override by alice: key account"


def test_a_segment_not_due_yet_is_still_put_back_with_a_plain_reason():
    record = _bought_once(RETAIL)  # low_value as of its day; judged long after, the rules would say otherwise
    late = day("2027-03-01")
    (change,) = changes_back(record, {"value": "churn_risk"}, {}, key="k", now_day=late, ruleset=RETAIL,
                             policy=POLICY)
    assert (change.before, change.after) == ("churn_risk", "low_value")
    assert change.explanation.condition == RECOVERED


def test_tags_published_past_the_saved_record_are_added_or_removed_back():
    mark = step.ManualTag("vip", "bob", "met at the fair", "m1")
    record, _ = step.on_tag(_bought_once(RETAIL), mark, tag="vip", event_id="m1", now_day=NOW, ruleset=RETAIL,
                            policy=POLICY)
    assert record.tags == ("vip",)
    changes = changes_back(record, {}, {"vip": False, "gone": True, "kept": False}, key="k", now_day=NOW,
                           ruleset=RETAIL, policy=POLICY)
    assert sorted((c.tag, c.added, c.cause) for c in changes) == [("gone", False, "recovery"),
                                                                   ("vip", True, "recovery")]
