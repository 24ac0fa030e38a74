"""Birthdays and first-purchase anniversaries (生日关怀): reached by the due chain alone (no scan), once a year, with a
deterministic id, and fired once by the actions that name them."""

from datetime import date

import pytest

from segmenter import step
from segmenter.actions import ChangeView, Ledger, decide
from segmenter.errors import InvalidRuleError
from segmenter.occasions import ANNIVERSARY, BIRTHDAY, Occasion, OccasionSpec, in_year, next_wake, reached
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from tests.segmenter.helpers import day, purchase

POLICY = Policy()
RULES = load_ruleset("""
id: care
version: 1
dimensions:
  value:
    segments:
      - {name: high, when: amount_12m >= 1000}
    default: low
actions:
  - id: birthday_coupon
    on: birthday
    lead: 3d
    coupon: {template: BDAY, percent: 20, valid_for: 14d}
  - id: anniversary_mail
    on: first_purchase_anniversary
    publish: {topic: email, payload: {template: anniversary, to: "{customer_id}"}}
""")


def test_a_29_february_birthday_falls_on_the_28th_in_other_years():
    assert in_year(date(2000, 2, 29), 2026) == date(2026, 2, 28)
    assert in_year(date(2000, 2, 29), 2028) == date(2028, 2, 29)
    assert in_year(date(1990, 7, 14), 2026) == date(2026, 7, 14)


def test_the_next_wake_is_the_occasion_less_its_lead_and_each_is_reached_once():
    specs = (OccasionSpec(BIRTHDAY, 3, "care"),)
    birth = date(1990, 1, 2)
    # across the new year: the 2027 birthday's wake day is 2026-12-30
    assert next_wake(specs, birth, None, day("2026-06-01")) == day("2026-12-30")
    assert next_wake(specs, birth, None, day("2026-12-30")) == day("2027-12-30")
    assert reached(specs, birth, None, day("2026-12-01"), day("2026-12-31")) == [
        Occasion(BIRTHDAY, day("2027-01-02"), 3, "care")]
    assert reached(specs, birth, None, day("2026-12-31"), day("2027-12-29")) == []
    # woken years late: the last CATCH_UP_DAYS only, never a backlog
    assert [o.day for o in reached(specs, birth, None, day("2020-01-01"), day("2026-12-31"))] == [day("2027-01-02")]
    # the birth itself is no birthday, nor is the first purchase an anniversary
    assert reached(specs, date(2026, 3, 1), None, day("2026-01-01"), day("2026-12-31")) == []
    anniversary = (OccasionSpec(ANNIVERSARY, 0, "care"),)
    assert next_wake(anniversary, None, day("2025-03-10"), day("2025-03-10")) == day("2026-03-10")
    assert next_wake(anniversary, None, None, day("2025-03-10")) is None


def _walk(record, until):
    """The due chain as the worker's due index walks it: on_time on each due day up to ``until``."""
    occasions = []
    while record.due is not None and record.due <= day(until):
        record, changes = step.on_time(record, record.due, RULES, POLICY)
        occasions += [c for c in changes if isinstance(c, Occasion)]
    return record, occasions


def test_the_due_chain_wakes_a_customer_for_its_birthday_and_anniversary_once_a_year():
    record, _ = step.on_profile(step.CustomerRecord(), {"profile.region": "north", "birth_date": "1988-08-20"},
                                key="p1", now_day=day("2026-03-01"), ruleset=RULES, policy=POLICY)
    record, changes, _ = step.on_fact(record, purchase("2026-03-10", 200, "e1"), event_id="e1",
                                      now_day=day("2026-03-10"), ruleset=RULES, policy=POLICY)
    assert not [c for c in changes if isinstance(c, Occasion)]
    assert record.due == day("2026-08-17")  # the birthday less its 3 days: nothing else is due before
    record, occasions = _walk(record, "2027-12-31")
    assert occasions == [Occasion(BIRTHDAY, day("2026-08-20"), 3, "care"),
                         Occasion(ANNIVERSARY, day("2027-03-10"), 0, "care"),
                         Occasion(BIRTHDAY, day("2027-08-20"), 3, "care")]
    ids = {o.change_id("C1") for o in occasions}
    assert len(ids) == 3
    assert occasions[0].change_id("C1", "care@1") == occasions[0].change_id("C1", "care@2")  # any version


def test_an_event_after_the_wake_day_reaches_the_occasion_the_due_index_had_not_woken_yet():
    record, _ = step.on_profile(step.CustomerRecord(), {"birth_date": "1988-08-20"}, key="p1",
                                now_day=day("2026-03-01"), ruleset=RULES, policy=POLICY)
    assert record.due == day("2026-08-17")
    record, changes, _ = step.on_fact(record, purchase("2026-08-19", 50, "e1"), event_id="e1",
                                      now_day=day("2026-08-19"), ruleset=RULES, policy=POLICY)
    assert [c for c in changes if isinstance(c, Occasion)] == [Occasion(BIRTHDAY, day("2026-08-20"), 3, "care")]
    assert record.due > day("2026-08-19")
    _, again = _walk(record, "2026-12-31")  # and not a second time
    assert again == []


def _view(occasion: Occasion, customer: str = "C1") -> ChangeView:
    return ChangeView(occasion.change_id(customer), customer, occasion.dimension, str(occasion.lead_days),
                      date.fromordinal(occasion.day).isoformat(), 1e9, "care", 1, {}, "time")


def test_an_occasion_fires_the_actions_on_it_once():
    ledger = Ledger()
    birthday = Occasion(BIRTHDAY, day("2026-08-20"), 3, "care")
    out = decide(ledger, _view(birthday), RULES.actions, [], replay_before_s=None)
    assert [g.action.id for g in out.grants] == ["birthday_coupon"]
    assert out.grants[0].action.target == "#birthday-3d"
    assert not decide(ledger, _view(birthday), RULES.actions, [], replay_before_s=None).effective  # a replay
    other_lead = Occasion(BIRTHDAY, day("2026-08-20"), 0, "care")
    assert decide(ledger, _view(other_lead), RULES.actions, [], replay_before_s=None).grants == []
    anniversary = Occasion(ANNIVERSARY, day("2027-03-10"), 0, "care")
    assert [g.action.id for g in decide(ledger, _view(anniversary), RULES.actions, [],
                                        replay_before_s=None).grants] == ["anniversary_mail"]


@pytest.mark.parametrize(("action", "message"), [
    ("{id: a, on: birthday, enter: value.high, coupon: {template: B, percent: 5, valid_for: 1d}}",
     "exactly one of 'enter' or 'leave'"),
    ("{id: a, enter: value.high, lead: 3d, coupon: {template: B, percent: 5, valid_for: 1d}}",
     "'lead' goes with 'on'"),
    ("{id: a, on: birthday, min_dwell: 3d, coupon: {template: B, percent: 5, valid_for: 1d}}",
     "'min_dwell' goes with a transition"),
    ("{id: a, on: birthday, lead: 400d, coupon: {template: B, percent: 5, valid_for: 1d}}",
     "a lead is whole days, at most 366d"),
    ("{id: a, on: birthday, lead: 36h, coupon: {template: B, percent: 5, valid_for: 1d}}",
     "a lead is whole days"),
    ("{id: a, on: wedding, coupon: {template: B, percent: 5, valid_for: 1d}}", "birthday"),
])
def test_bad_occasion_actions_are_refused_with_their_position(action, message):
    text = ("id: x\nversion: 1\ndimensions:\n  value:\n    segments:\n      - {name: high, when: amount_12m > 1}\n"
            f"    default: low\nactions:\n  - {action}\n")
    with pytest.raises(InvalidRuleError, match=message):
        load_ruleset(text)
