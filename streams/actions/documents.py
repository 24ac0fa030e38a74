"""The action worker's output documents: a grant's coupon, alert or published record, and a suppression's audit
record (``Actor`` sends them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schemas.outputs import ActionSuppressed, Alert, Coupon, Published
from segmenter.actions import Grant, Suppressed, coupon_code
from streams.actions.rulesets import KnownRulesets
from streams.names import Names


def grant_document(grant: Grant, assigned: tuple[str, str] | None, names: Names, rulesets: KnownRulesets
                   ) -> tuple[str, bytes]:
    """A grant's output record: its topic and document; ``assigned``: an alert's manager and team."""
    action, change = grant.action, grant.change
    now = datetime.now(UTC)
    common = {"idempotency_key": grant.key, "change_id": change.change_id, "customer_id": change.customer_id,
              "action": action.id, "segment": action.target, "ruleset_id": change.ruleset_id,
              "ruleset_version": change.ruleset_version,
              "stream_time": datetime.fromtimestamp(grant.at_s, UTC)}
    if action.coupon is not None:
        c = action.coupon
        coupon = Coupon(coupon_id=grant.grant_id, template=c.template,
                        code=coupon_code(c.template, action.id, change.change_id), value=c.value,
                        percent=c.percent, valid_until=now + timedelta(seconds=c.valid_for_s), issued_at=now,
                        **common)
        return names.coupons, coupon.model_dump_json(by_alias=True).encode()
    if action.publish is not None:
        dim = next((d for d in rulesets.cached(change).dimensions if d.name == action.dimension), None)
        segment = (change.after or "") if action.occasion else action.segment  # an occasion: its date
        fields = {"customer_id": change.customer_id, "dimension": action.dimension, "segment": segment,
                  "label": (dim.labels.get(action.segment) if dim else None) or segment,
                  "strategy": (dim.strategies.get(action.segment) if dim else None) or ""}
        published = Published(publish_id=grant.grant_id, topic=action.publish.topic, published_at=now,
                              payload={k: v.format(**fields) for k, v in action.publish.payload}, **common)
        return names.publish(action.publish.topic), published.model_dump_json().encode()
    assert action.alert is not None
    manager, team = assigned if assigned is not None else (None, None)
    message = action.alert.message.format(customer_id=change.customer_id, dimension=action.dimension,
                                          segment=change.after if action.occasion else action.segment,
                                          manager=manager or "-", team=team or "-")
    alert = Alert(alert_id=grant.grant_id, priority=action.alert.priority,
                  manager=manager, team=team, message=message, raised_at=now, **common)
    return names.alerts, alert.model_dump_json(by_alias=True).encode()


def audit_document(s: Suppressed) -> bytes:
    """A suppression's record on the audit topic."""
    return ActionSuppressed(
        idempotency_key=s.key, change_id=s.change.change_id, customer_id=s.change.customer_id,
        action=s.action.id, segment=s.action.target, reason=s.reason,
        stream_time=datetime.fromtimestamp(s.change.stream_s, UTC), at=datetime.now(UTC),
    ).model_dump_json().encode()
