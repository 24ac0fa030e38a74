"""Tags (标签) in the core: given by a condition, copied from the profile, or by hand; many per customer; each
addition and removal a change with its reason; time-driven ones on their due day; kept in the record."""

import pytest

from segmenter import step
from segmenter.errors import InvalidRuleError
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from tests.segmenter.helpers import day, purchase

POLICY = Policy()
RULES = load_ruleset("""
id: tagged
version: 1
dimensions:
  value:
    segments:
      - {name: high, when: amount_12m >= 1000}
    default: low
tags:
  - name: risk:no_repurchase_3m
    when: days_since_last_purchase > 90
  - name: 行业:{profile.industry}
  - name: big_north
    when: amount_12m >= 500 and profile.region == "north"
""")


def _buy(record, when, amount, event_id, now=None):
    return step.on_fact(record, purchase(when, amount, event_id), event_id=event_id, now_day=now or day(when),
                        ruleset=RULES, policy=POLICY)


def _tag_changes(changes):
    return [(c.tag, c.added, c.cause) for c in changes if isinstance(c, step.TagChange)]


def test_a_condition_tag_comes_on_its_due_day_by_time_alone_and_goes_with_the_next_purchase():
    record, changes, _ = _buy(step.CustomerRecord(), "2026-01-10", 100, "e1")
    assert record.tags == ()
    assert _tag_changes(changes) == []
    woken = []
    while not record.tags:  # the due chain (it may wake early, never late) reaches the first day of '> 90'
        woken.append(record.due)
        record, changes = step.on_time(record, record.due, RULES, POLICY)
    assert woken[-1] == day("2026-01-10") + 91
    assert record.tags == ("risk:no_repurchase_3m",)
    (change,) = changes
    assert (change.tag, change.added, change.cause, change.cause_key) == (
        "risk:no_repurchase_3m", True, "time", str(day("2026-01-10") + 91))
    assert change.condition == "days_since_last_purchase > 90"
    assert change.metrics == {"days_since_last_purchase": 91}
    record, changes, _ = _buy(record, "2026-05-01", 100, "e2")
    assert record.tags == ()
    assert _tag_changes(changes) == [("risk:no_repurchase_3m", False, "event")]
    assert changes[-1].condition == "no longer: days_since_last_purchase > 90"


def test_profile_tags_copy_the_attribute_and_conditions_may_read_the_profile():
    record, _, _ = _buy(step.CustomerRecord(), "2026-01-10", 600, "e1")
    record, changes = step.on_profile(record, {"profile.industry": "制造业", "profile.region": "north"}, key="p1",
                                      now_day=day("2026-01-10"), ruleset=RULES, policy=POLICY)
    assert record.tags == ("big_north", "行业:制造业")
    assert sorted(_tag_changes(changes)) == [("big_north", True, "event"), ("行业:制造业", True, "event")]
    by_tag = {c.tag: c for c in changes}
    assert by_tag["行业:制造业"].condition == "profile.industry = '制造业'"
    assert by_tag["big_north"].metrics == {"amount_12m": 600, "profile.region": "north"}
    record, changes = step.on_profile(record, {"profile.industry": "零售", "profile.region": "north"}, key="p2",
                                      now_day=day("2026-01-10"), ruleset=RULES, policy=POLICY)
    assert sorted(_tag_changes(changes)) == [("行业:制造业", False, "event"), ("行业:零售", True, "event")]


def test_manual_tags_are_added_and_removed_by_hand_and_a_rule_tag_stays_while_its_condition_holds():
    record, _, _ = _buy(step.CustomerRecord(), "2026-01-10", 100, "e1")
    mark = step.ManualTag("需求:降本增效", "alice", "asked for a cost review", "t1")
    record, changes = step.on_tag(record, mark, tag=mark.tag, event_id="t1", now_day=day("2026-01-11"),
                                  ruleset=RULES, policy=POLICY)
    assert record.tags == ("需求:降本增效",)
    (change,) = changes
    assert (change.tag, change.added, change.cause, change.cause_key) == ("需求:降本增效", True, "manual", "t1")
    assert change.condition == "tagged by alice: asked for a cost review"
    again, changes = step.on_tag(record, mark, tag=mark.tag, event_id="t1", now_day=day("2026-01-11"),
                                 ruleset=RULES, policy=POLICY)
    assert again is record
    assert changes == []
    # a manual copy of a tag the rules give: removing it by hand leaves the rules' tag
    record, _ = step.on_time(record, day("2026-05-01"), RULES, POLICY)
    assert "risk:no_repurchase_3m" in record.tags
    risk = step.ManualTag("risk:no_repurchase_3m", "bob", "called, no answer", "t2")
    record, changes = step.on_tag(record, risk, tag=risk.tag, event_id="t2", now_day=day("2026-05-01"),
                                  ruleset=RULES, policy=POLICY)
    assert changes == []  # it had the tag already
    record, changes = step.on_tag(record, None, tag=risk.tag, event_id="t3", now_day=day("2026-05-01"),
                                  ruleset=RULES, policy=POLICY)
    assert changes == []
    assert record.tags == ("risk:no_repurchase_3m", "需求:降本增效")
    record, changes = step.on_tag(record, None, tag=mark.tag, event_id="t4", now_day=day("2026-05-01"),
                                  ruleset=RULES, policy=POLICY)
    assert _tag_changes(changes) == [("需求:降本增效", False, "manual")]
    assert record.manual_tags == ()


def test_a_ruleset_without_a_tag_removes_it_with_cause_rules():
    record, _, _ = _buy(step.CustomerRecord(), "2026-01-10", 100, "e1", now=day("2026-06-01"))
    assert record.tags == ("risk:no_repurchase_3m",)
    plain = load_ruleset(RULES.source.split("tags:")[0].replace("version: 1", "version: 2"))
    record, changes = step.on_rules(record, day("2026-06-01"), plain, POLICY)
    assert _tag_changes(changes) == [("risk:no_repurchase_3m", False, "rules")]
    assert record.tags == ()


def test_tags_and_marks_travel_in_the_stored_record_with_pins():
    record, _, _ = _buy(step.CustomerRecord(), "2026-01-10", 100, "e1", now=day("2026-06-01"))
    record, _ = step.on_tag(record, step.ManualTag("vip", "a", "b", "t1"), tag="vip", event_id="t1",
                            now_day=day("2026-06-01"), ruleset=RULES, policy=POLICY)
    record, _ = step.on_override(record, step.Override("value", "high", None, "a", "b", "o1"), dimension="value",
                                 event_id="o1", now_day=day("2026-06-01"), ruleset=RULES, policy=POLICY)
    assert record.tags == ("risk:no_repurchase_3m", "vip")
    assert record.overrides
    assert step.loads(step.dumps(record)) == record
    plain = record._replace(overrides=())
    assert step.loads(step.dumps(plain)) == plain
    assert len(step.dumps(record._replace(tags=(), manual_tags=()))) < len(step.dumps(record))


def test_change_ids_are_deterministic_and_differ_by_direction():
    added = step.TagChange("vip", True, "manual", "t1", "x", metrics={})
    removed = step.TagChange("vip", False, "manual", "t1", "x", metrics={})
    other_condition = step.TagChange("vip", True, "manual", "t1", "y", metrics={})
    assert added.change_id("C1", "r@1") == other_condition.change_id("C1", "r@1")
    assert added.change_id("C1", "r@1") != removed.change_id("C1", "r@1")


@pytest.mark.parametrize(("tags", "message"), [
    ("  - name: x:{profile.colour}", "a name may copy only"),
    ("  - name: a\n  - name: a", "duplicate tag name"),
    ("  - name: a\n    when: days_since_last_purchse > 3", "did you mean 'days_since_last_purchase'"),
    ("  - name: has space", "tags.0.name"),
])
def test_bad_tags_are_refused_with_their_position(tags, message):
    with pytest.raises(InvalidRuleError, match=message) as info:
        load_ruleset(RULES.source.split("tags:")[0] + "tags:\n" + tags, "t.yaml")
    assert "t.yaml:" in str(info.value)


@pytest.mark.parametrize(("industry", "tag"), [
    ("制造业", "行业:制造业"),
    ("heavy industry", "行业:heavy_industry"),
    ("a\nb\x1b[31mred", "行业:a_b_31mred"),
    ("x" * 500, "行业:" + "x" * 125),
])
def test_a_tag_copied_from_the_profile_keeps_only_what_a_tag_name_may_hold(industry, tag):
    rendered = RULES.tags[1].render({"profile.industry": industry})
    assert rendered == tag
