"""A ruleset's third kind of action: ``publish`` sends a documented, versioned event (``Published``) to
``<prefix>publish.<topic>`` for another tool, once per transition like a coupon, with its payload filled from the
customer, the segment and the segment's label and strategy; an action worker that starts again sends none twice."""

from __future__ import annotations

import orjson
import pytest

from schemas.outputs import Published
from streams.cli.demo_data import DemoSpec, generate
from streams.names import Names
from tests.integration.helpers import RETAIL, consume_all

pytestmark = pytest.mark.integration

PUBLISH = """
  - id: winback_mail               # 流失风险客户 -> 自动化邮件, through the e-mail tool's topic
    enter: value.churn_risk
    publish:
      topic: email
      payload: {template: winback, to: "{customer_id}", subject: "We miss you ({label})", plan: "{strategy}"}
"""


def test_publish_actions_send_one_event_per_entry(system, tmp_path):
    rules = tmp_path / "retail.yaml"
    text = RETAIL.read_text().replace("      - name: churn_risk\n", "      - name: churn_risk\n"
                                      "        label: 流失风险客户\n        strategy: a call within 30 days\n", 1)
    rules.write_text(text.replace("actions:\n", "actions:" + PUBLISH, 1))
    assert system.run("rules", "check", str(rules)) == 0
    demo = generate(DemoSpec(customers=300, seed=4), tmp_path / "demo")
    assert system.run("rules", "apply", str(rules)) == 0
    system.start_worker()
    actions = system.start_actions(actions_replay_horizon="0d")
    assert system.run("import", "transactions", str(demo["transactions"]), "--quiet") == 0
    assert system.run("tick", "--to", "2026-07-31T23:59:59+00:00") == 0
    assert system.run("wait", "--actions", "--timeout", "180") == 0

    names = Names(system.settings.topic_prefix)
    entries = {c["change_id"] for c in (orjson.loads(v) for _, v in consume_all(system.settings,
                                                                                 names.segment_changes))
               if c.get("dimension") == "value" and c["to"] == "churn_risk" and c["cause"] != "recovery"}
    published = [Published.model_validate_json(v) for _, v in consume_all(system.settings, names.publish("email"))]
    assert len(entries) > 10
    assert {p.change_id for p in published} == entries
    assert len({p.publish_id for p in published}) == len(published) == len(entries)
    first = published[0]
    assert first.payload == {"template": "winback", "to": first.customer_id, "subject": "We miss you (流失风险客户)",
                             "plan": "a call within 30 days"}
    assert (first.action, first.segment, first.schema_version) == ("winback_mail", "value.churn_risk", 1)

    system.kill_worker(actions)  # a fresh start re-reads the changes: the ledger makes none of them publish again
    system.start_actions(actions_replay_horizon="0d")
    assert system.run("wait", "--actions", "--timeout", "180") == 0
    assert len(consume_all(system.settings, names.publish("email"))) == len(published)


def test_a_payload_template_outside_the_fields_is_refused(system, tmp_path, capsys):
    rules = tmp_path / "bad.yaml"
    rules.write_text(RETAIL.read_text().replace("actions:\n", "actions:" + PUBLISH.replace(
        "{strategy}", "{customer_id.__class__}"), 1))
    assert system.run("rules", "check", str(rules)) == 1
    assert "the field {customer_id.__class__} is not allowed; a payload value may use" in capsys.readouterr().err
