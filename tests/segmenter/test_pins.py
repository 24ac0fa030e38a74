"""Manual overrides (pins) in the core: they win over the rules for their dimension, expire on their day through
the due day, are stale (kept, not applied) when the ruleset lacks their segment, and travel in the record."""

from pathlib import Path

from segmenter import step
from segmenter.policy import Policy
from segmenter.preview import preview_record
from segmenter.rules import load_ruleset
from tests.segmenter.helpers import day, purchase

POLICY = Policy()
RETAIL = load_ruleset((Path(__file__).resolve().parents[2] / "examples/rules/retail-value.yaml").read_text())
NOW = day("2026-06-30")


def _bought_once() -> step.CustomerRecord:
    record, _, _ = step.on_fact(step.CustomerRecord(), purchase("2026-06-01", 100, "e1"), event_id="e1",
                                now_day=NOW, ruleset=RETAIL, policy=POLICY)
    return record


def _pin(segment="high_value", until=None) -> step.Override:
    return step.Override("value", segment, until, "alice", "key account", "o1")


def test_a_pin_wins_over_the_rules_and_says_who_and_why():
    record = _bought_once()
    assert dict(record.segments)["value"] == "low_value"
    pinned, changes = step.on_override(record, _pin(until=day("2026-08-01")), dimension="value", event_id="o1",
                                       now_day=NOW, ruleset=RETAIL, policy=POLICY)
    assert dict(pinned.segments)["value"] == "high_value"
    (change,) = changes
    assert (change.before, change.after, change.cause) == ("low_value", "high_value", "override")
    assert change.explanation.condition == "override by alice until 2026-08-01: key account"
    assert pinned.due is not None
    assert pinned.due <= day("2026-08-01")  # the due index wakes the customer on the pin's last day at the latest
    assert step.loads(step.dumps(pinned)) == pinned


def test_a_pin_holds_through_events_and_expires_on_its_day():
    pinned, _ = step.on_override(_bought_once(), _pin(until=day("2026-08-01")), dimension="value", event_id="o1",
                                 now_day=NOW, ruleset=RETAIL, policy=POLICY)
    more, _, _ = step.on_fact(pinned, purchase("2026-07-01", 50, "e2"), event_id="e2", now_day=day("2026-07-01"),
                              ruleset=RETAIL, policy=POLICY)
    assert dict(more.segments)["value"] == "high_value"
    assert more.overrides == pinned.overrides
    expired, changes = step.on_time(more, day("2026-08-01"), RETAIL, POLICY)
    assert dict(expired.segments)["value"] == "low_value"
    assert expired.overrides == ()
    assert [(c.before, c.after, c.cause) for c in changes] == [("high_value", "low_value", "time")]


def test_clearing_returns_to_what_the_rules_say_now():
    pinned, _ = step.on_override(_bought_once(), _pin(), dimension="value", event_id="o1", now_day=NOW,
                                 ruleset=RETAIL, policy=POLICY)
    cleared, changes = step.on_override(pinned, None, dimension="value", event_id="o2", now_day=NOW,
                                        ruleset=RETAIL, policy=POLICY)
    assert (dict(cleared.segments)["value"], cleared.overrides) == ("low_value", ())
    assert [(c.after, c.cause) for c in changes] == [("low_value", "override")]


def test_a_pin_to_a_segment_the_ruleset_lacks_is_kept_but_not_applied():
    stale = _pin(segment="platinum")
    record, changes = step.on_override(_bought_once(), stale, dimension="value", event_id="o1", now_day=NOW,
                                       ruleset=RETAIL, policy=POLICY)
    assert dict(record.segments)["value"] == "low_value"
    assert changes == []
    assert record.overrides == (stale,)


def test_a_record_without_pins_is_written_as_before_and_clearing_nothing_changes_nothing():
    record = _bought_once()
    plain, pinned = step.dumps(record), step.dumps(record._replace(overrides=(_pin(),)))
    assert pinned[: len(plain)] == plain  # a pin only adds a tail: without one the record ends where it always did
    assert pinned[len(plain)] == step.OVERRIDES_TAG
    assert step.loads(plain).overrides == ()
    assert step.on_override(record, None, dimension="value", event_id="o", now_day=NOW, ruleset=RETAIL,
                            policy=POLICY) == (record, [])


def test_preview_applies_active_pins_as_the_worker_would():
    record = _bought_once()
    pinned, _ = step.on_override(record, _pin(until=day("2026-08-01")), dimension="value", event_id="o1",
                                 now_day=NOW, ruleset=RETAIL, policy=POLICY)
    candidate = load_ruleset(RETAIL.source.replace("version: 1", "version: 2"))
    raw, shallow = step.loads_shallow(step.dumps(pinned))
    assert shallow.state is not pinned.state
    assert preview_record(candidate, raw, shallow, NOW, POLICY) == ((("value", "high_value"),), 10000)
    after_expiry = preview_record(candidate, raw, shallow, day("2026-08-01"), POLICY)[0]
    assert after_expiry == (("value", "low_value"),)
    renamed = load_ruleset(RETAIL.source.replace("version: 1", "version: 2").replace("high_value", "top"))
    assert preview_record(renamed, raw, shallow, NOW, POLICY)[0] == (("value", "low_value"),)  # stale: not applied
