"""Actions decided by the core: cooldown and dwell at their boundaries, replay, ids, routing, validation."""

from dataclasses import replace
from pathlib import Path

import pytest

from segmenter.actions import (
    ChangeView,
    Ledger,
    coupon_code,
    decide,
    duration_s,
    fire_due,
    grant_id,
)
from segmenter.errors import InvalidRuleError
from segmenter.rules import load_ruleset

RETAIL = (Path(__file__).resolve().parents[2] / "examples" / "rules" / "retail-value.yaml").read_text()
RULES = load_ruleset(RETAIL)
DAY = 86_400
WINBACK = next(a for a in RULES.actions if a.id == "winback_coupon")
SENIOR = next(a for a in RULES.actions if a.id == "senior_manager")


def change(n: int, before: str | None, after: str, at: float, customer: str = "C1") -> ChangeView:
    return ChangeView(f"ch{n}", customer, "value", before, after, at, "retail-value", 1, {"profile.region": "east"})


def test_the_shipped_ruleset_has_a_coupon_and_an_alert():
    assert (WINBACK.kind, WINBACK.target, WINBACK.cooldown_s) == ("coupon", "value.churn_risk", 30 * DAY)
    assert (SENIOR.kind, SENIOR.alert.roster, SENIOR.min_dwell_s) == ("alert", "senior", 0)
    assert RULES.rosters["senior"].teams["east"] == ("wang.fang", "chen.jing")


def test_entering_grants_once_and_a_repeated_change_grants_nothing():
    ledger = Ledger()
    first = decide(ledger, change(1, "low_value", "churn_risk", 0), RULES.actions, (), replay_before_s=None)
    assert [g.action.id for g in first.grants] == ["winback_coupon"]
    again = decide(ledger, change(1, "low_value", "churn_risk", 0), RULES.actions, (), replay_before_s=None)
    assert not again.effective
    assert ledger.last == {"winback_coupon": 0}


def test_a_first_classification_into_the_segment_is_an_entry_but_leaving_it_is_not():
    ledger = Ledger()
    assert decide(ledger, change(1, None, "churn_risk", 0), RULES.actions, (), replay_before_s=None).grants
    out = decide(ledger, change(2, "churn_risk", "low_value", 1), RULES.actions, (), replay_before_s=None)
    assert not out.effective


@pytest.mark.parametrize(("gap", "granted"), [(30 * DAY - 1, False), (30 * DAY, True)])
def test_cooldown_boundary(gap, granted):
    ledger = Ledger()
    decide(ledger, change(1, "low_value", "churn_risk", 0), RULES.actions, (), replay_before_s=None)
    decide(ledger, change(2, "churn_risk", "low_value", 10), RULES.actions, (), replay_before_s=None)
    out = decide(ledger, change(3, "low_value", "churn_risk", gap), RULES.actions, (), replay_before_s=None)
    assert bool(out.grants) is granted
    assert [s.reason for s in out.suppressed] == ([] if granted else ["cooldown"])


def test_replay_horizon_and_switched_off_actions_suppress():
    old = decide(Ledger(), change(1, None, "churn_risk", 100), RULES.actions, (), replay_before_s=101)
    assert [s.reason for s in old.suppressed] == ["replay"]
    assert not old.grants
    fresh = decide(Ledger(), change(1, None, "churn_risk", 101), RULES.actions, (), replay_before_s=101)
    assert fresh.grants
    off = decide(Ledger(), change(1, None, "churn_risk", 10**12), RULES.actions, (), replay_before_s=float("inf"))
    assert [s.reason for s in off.suppressed] == ["replay"]


def test_a_change_that_sets_the_topic_back_to_the_saved_state_grants_nothing():
    back = replace(change(1, "low_value", "churn_risk", 100), cause="recovery")
    out = decide(Ledger(), back, RULES.actions, (), replay_before_s=None)
    assert [s.reason for s in out.suppressed] == ["recovery"]
    assert not out.grants
    # it still ends a dwell that waited on the segment it leaves
    ledger = Ledger()
    waiting = decide(ledger, change(2, "mid_value", "high_value", 0), DWELL.actions, (), replay_before_s=None).pending
    left = replace(change(3, "high_value", "mid_value", DAY), cause="recovery")
    out = decide(ledger, left, DWELL.actions, waiting, replay_before_s=None)
    assert out.cancelled == waiting
    assert [s.reason for s in out.suppressed] == ["dwell"]


DWELL = load_ruleset(RETAIL.replace("    cooldown: 90d\n", "    cooldown: 90d\n    min_dwell: 2d\n"))


def test_min_dwell_waits_then_fires_at_its_due_time():
    ledger = Ledger()
    out = decide(ledger, change(1, "mid_value", "high_value", 0), DWELL.actions, (), replay_before_s=None)
    assert not out.grants
    assert [p.due_s for p in out.pending] == [2 * DAY]
    fired = fire_due(ledger, out.pending[0], DWELL.actions)
    assert [(g.action.id, g.at_s, g.change.change_id) for g in fired.grants] == [("senior_manager", 2 * DAY, "ch1")]


@pytest.mark.parametrize(("left_at", "granted"), [(2 * DAY - 1, False), (2 * DAY, True)])
def test_min_dwell_boundary_when_the_customer_leaves(left_at, granted):
    ledger = Ledger()
    pending = decide(ledger, change(1, "mid_value", "high_value", 0), DWELL.actions, (),
                     replay_before_s=None).pending
    out = decide(ledger, change(2, "high_value", "mid_value", left_at), DWELL.actions, pending,
                 replay_before_s=None)
    assert out.cancelled == pending
    assert bool(out.grants) is granted
    assert [s.reason for s in out.suppressed] == ([] if granted else ["dwell"])


def test_flapping_collects_one_coupon_per_cooldown():
    ledger, grants = Ledger(), 0
    for n in range(40):  # in and out of churn risk every day for 40 days
        before, after = ("low_value", "churn_risk") if n % 2 == 0 else ("churn_risk", "low_value")
        grants += len(decide(ledger, change(n, before, after, n * DAY), RULES.actions, (),
                             replay_before_s=None).grants)
    assert grants == 2  # day 0 and day 30


def test_ids_derive_from_the_change_and_the_action():
    # Pinned: a grant's id and coupon code must not change between releases, or a replay after an upgrade
    # would find no ledger entry and grant again.
    assert grant_id("a", "ch1") == "3d5fe4781197f2ca67263de72ef77d0a"
    assert grant_id("a", "ch2") == "f0cca6ab674d099a67257d7c73b97df0"
    assert len({grant_id("a", "ch1"), grant_id("a", "ch2"), grant_id("b", "ch1"), grant_id("a\x00c", "h1")}) == 4
    assert coupon_code("WINBACK15", "a", "ch1") == "WINBACK15-L7J7Y5KVUHOT"


def test_routing_keeps_a_manager_while_the_roster_does():
    roster = RULES.rosters["senior"]
    team, members = roster.team_of({"profile.region": "east"})
    assert (team, members) == ("east", ("wang.fang", "chen.jing"))
    assert roster.team_of({"profile.region": "mars"}) == ("", ("sun.li",))
    assert roster.choose(members, None, {"wang.fang": 3, "chen.jing": 1}, 0) == "chen.jing"
    assert roster.choose(members, None, {}, 0) == "wang.fang"  # tie: roster order
    assert roster.choose(members, "wang.fang", {"wang.fang": 9}, 0) == "wang.fang"  # stable
    assert roster.choose(members, "li.wei", {"wang.fang": 9}, 0) == "chen.jing"  # moved team: reassigned


def test_ledger_round_trips_and_keeps_a_bounded_memory():
    ledger = Ledger()
    for n in range(100):
        ledger.record_grant("a", f"ch{n}", n)
    again = Ledger.from_dict(ledger.to_dict())
    assert again == ledger
    assert (len(again.granted), again.last) == (64, {"a": 99})


@pytest.mark.parametrize(("old", "new", "message"), [
    ("enter: value.churn_risk", "enter: value.churn_rsk", "has no segment 'churn_rsk' (did you mean 'churn_risk'?)"),
    ("enter: value.churn_risk", "enter: valu.churn_risk", "no dimension 'valu' (did you mean 'value'?)"),
    ("roster: senior,", "roster: senor,", "no roster 'senor' (did you mean 'senior'?)"),
    ("cooldown: 30d", "cooldown: 1m", "actions.0.cooldown: String should match pattern"),
    ("percent: 15,", "percent: 15, value: 5,", "exactly one of 'value' or 'percent'"),
    ("call them ({manager}", "call them ({boss}", "the field {boss} is not allowed"),
])
def test_bad_actions_are_refused_with_the_place_and_reason(old, new, message):
    assert old in RETAIL
    with pytest.raises(InvalidRuleError) as info:
        load_ruleset(RETAIL.replace(old, new, 1), "retail.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("retail.yaml:"), str(info.value)


def test_durations():
    assert [duration_s(t) for t in ("30d", "12h", "90s")] == [30 * DAY, 43_200, 90]
    with pytest.raises(InvalidRuleError, match="whole number of d, h or s"):
        duration_s("1m")


TWO_ON_ONE = load_ruleset(RETAIL.replace(
    "  - id: senior_manager           # 高价值客户 → 资深客户经理\n    enter: value.high_value",
    "  - id: winback_call\n    enter: value.churn_risk\n    alert: {priority: high, message: \"call {customer_id}\"}\n"
    "  - id: senior_manager           # 高价值客户 → 资深客户经理\n    enter: value.high_value", 1))


def test_a_crash_between_two_grants_of_one_change_loses_neither():
    actions = [a.id for a in TWO_ON_ONE.actions if a.target == "value.churn_risk"]
    assert actions == ["winback_coupon", "winback_call"]
    entered = change(1, "low_value", "churn_risk", 0)
    # Before the crash the first grant was acknowledged; the restart finds it on its topic and folds it in
    ledger = Ledger()
    ledger.record_grant("winback_coupon", entered.change_id, 0)
    again = Ledger.from_dict(ledger.to_dict())
    out = decide(again, entered, TWO_ON_ONE.actions, (), replay_before_s=None)  # the change is redelivered
    assert [g.action.id for g in out.grants] == ["winback_call"]
    assert again.has_granted("winback_coupon", "ch1")
    assert again.has_granted("winback_call", "ch1")
    assert not decide(again, entered, TWO_ON_ONE.actions, (), replay_before_s=None).effective  # a third copy


def test_both_grants_folded_in_leave_nothing_to_grant_and_the_change_decided():
    entered = change(1, "low_value", "churn_risk", 0)
    ledger = Ledger()
    for action in ("winback_coupon", "winback_call"):
        ledger.record_grant(action, entered.change_id, 0)
    assert not decide(ledger, entered, TWO_ON_ONE.actions, (), replay_before_s=None).grants
    assert "ch1" in ledger.seen


def test_a_ledger_written_before_pairs_were_kept_still_skips_its_changes():
    old = Ledger.from_dict({"seen": ["ch1"], "last": {"winback_coupon": 0}, "managers": {}})
    assert not decide(old, change(1, "low_value", "churn_risk", 0), TWO_ON_ONE.actions, (),
                      replay_before_s=None).effective
