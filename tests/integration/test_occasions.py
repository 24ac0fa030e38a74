"""Birthdays and first-purchase anniversaries through the stack: a profile's birth date, the worker woken by its due
index on the day less the lead (no scan), an ``Occasion`` on the segment-changes topic without the birth date, and
one coupon or published event per customer and year, none again when the action worker starts over."""

from __future__ import annotations

import orjson
import pytest

from schemas.outputs import Coupon, Occasion, Published
from streams.names import Names
from tests.integration.helpers import consume_all

pytestmark = pytest.mark.integration

RULES = """
id: care
version: 1
dimensions:
  value:
    segments:
      - {name: high, when: amount_12m >= 1000}
    default: low
actions:
  - id: birthday_coupon          # 生日关怀: two days ahead
    on: birthday
    lead: 2d
    coupon: {template: BDAY, percent: 20, valid_for: 14d}
  - id: anniversary_mail         # 首购周年
    on: first_purchase_anniversary
    publish: {topic: email, payload: {template: anniversary, to: "{customer_id}", day: "{segment}"}}
"""
PROFILES = "customer_id,region,birth_date\nA,north,1990-07-10\nB,east,2000-02-29\nC,south,\n"
TX = ("customer_id,occurred_at,amount,kind,event_id\n"
      "A,2025-08-01,100,,a1\nB,2026-01-05,100,,b1\nC,2025-07-20,100,,c1\n")


def test_birthdays_and_anniversaries_fire_once_a_year(system, tmp_path, capsys):
    for name, text in (("rules.yaml", RULES), ("p.csv", PROFILES), ("tx.csv", TX)):
        (tmp_path / name).write_text(text)
    assert system.run("rules", "apply", str(tmp_path / "rules.yaml")) == 0
    system.start_worker()
    actions = system.start_actions(actions_replay_horizon="0d")
    assert system.run("import", "profiles", str(tmp_path / "p.csv"), "--quiet") == 0
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("tick", "--to", "2026-07-07T12:00:00+00:00") == 0  # A's wake day is 07-08
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    names = Names(system.settings.topic_prefix)
    # B, born on 29 February: its birthday this year was the 28th, behind the stream time already
    coupons = [Coupon.model_validate_json(v) for _, v in consume_all(system.settings, names.coupons)]
    assert [(c.customer_id, c.action, c.segment) for c in coupons] == [("B", "birthday_coupon", "#birthday-2d")]

    # A's birthday (07-10) two days ahead; C's first anniversary (07-20); not yet A's (08-01)
    assert system.run("tick", "--to", "2026-07-31T12:00:00+00:00") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    coupons = [Coupon.model_validate_json(v) for _, v in consume_all(system.settings, names.coupons)]
    assert sorted(c.customer_id for c in coupons) == ["A", "B"]
    mails = [Published.model_validate_json(v) for _, v in consume_all(system.settings, names.publish("email"))]
    assert [(m.customer_id, m.payload["day"]) for m in mails] == [("C", "2026-07-20")]
    occasions = [orjson.loads(v) for _, v in consume_all(system.settings, names.segment_changes)
                 if orjson.loads(v)["type"] == "occasion"]
    assert sorted((o["customer_id"], o["occasion"], o["date"]) for o in occasions) == [
        ("A", "birthday", "2026-07-10"), ("B", "birthday", "2026-02-28"),
        ("C", "first_purchase_anniversary", "2026-07-20")]
    for doc in occasions:
        Occasion.model_validate(doc)
        assert "birth_date" not in doc.get("profile", {})  # the birth date stays in the customer's record

    capsys.readouterr()
    assert system.run("customer", "A") == 0
    assert "birthday on 2026-07-10, 2 day(s) ahead" in capsys.readouterr().out

    system.kill_worker(actions)  # a fresh start re-reads the changes: nothing is granted twice
    system.start_actions(actions_replay_horizon="0d")
    assert system.run("tick", "--to", "2026-08-02T12:00:00+00:00") == 0  # A's first anniversary: 08-01
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    assert len(consume_all(system.settings, names.coupons)) == 2
    mails = [Published.model_validate_json(v) for _, v in consume_all(system.settings, names.publish("email"))]
    assert sorted((m.customer_id, m.payload["day"]) for m in mails) == [("A", "2026-08-01"), ("C", "2026-07-20")]
