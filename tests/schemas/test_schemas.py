from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from schemas import JSON_DIR, MODELS, SegmentChange, Transaction, first_error, json_schemas
from schemas.events import TRANSACTION_ADAPTER
from schemas.quick import quick_transaction

NOW = datetime(2026, 6, 30, tzinfo=UTC)


def test_committed_json_schemas_are_current():
    expected = json_schemas()
    on_disk = {p.name: p.read_text() for p in JSON_DIR.glob("*.schema.json")}
    assert on_disk == expected, "run `make schemas` and commit schemas/json"


def test_every_model_exports_a_schema():
    assert set(json_schemas()) == {f"{name}.schema.json" for name in MODELS}


def test_inbound_events_ignore_unknown_fields():
    tx = TRANSACTION_ADAPTER.validate_python({
        "event_id": "e1", "customer_id": "C1", "occurred_at": "2026-06-01T10:00:00+08:00",
        "amount": "12.30", "order_id": "o1", "loyalty_tier": "gold"})
    assert tx.amount == Decimal("12.30")
    assert tx.kind == "purchase"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("occurred_at", "2026-06-01T10:00:00", "timezone"),
    ("amount", "-5", "must not be negative"),
    ("amount", "NaN", "finite"),
    ("customer_id", "", "at least 1 character"),
])
def test_transactions_refuse_bad_values(field, value, message):
    doc = {"event_id": "e1", "customer_id": "C1", "occurred_at": "2026-06-01T10:00:00Z",
           "amount": "1", "order_id": "o1", field: value}
    with pytest.raises(ValidationError, match=message):
        Transaction.model_validate(doc)


def test_outbound_models_forbid_unknown_fields_and_use_from_to_aliases():
    change = SegmentChange.model_validate({
        "change_id": "x", "customer_id": "C1", "dimension": "value", "from": None, "to": "high_value",
        "ruleset_id": "r", "ruleset_version": 1, "cause": "event", "condition": "c", "metrics": {},
        "stream_time": NOW})
    assert change.model_dump(by_alias=True)["to"] == "high_value"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SegmentChange.model_validate({**change.model_dump(by_alias=True), "surprise": 1})


@pytest.mark.parametrize("customer", ["a\x1fb", "a\nb", "a\x1b[2J", "a\x00", "a\x85b", "a\u2028b"])
def test_ids_with_control_characters_are_refused_at_the_edge_by_the_model_and_the_quick_path(customer):
    doc = {"event_id": "e1", "customer_id": customer, "occurred_at": "2026-06-01T10:00:00Z", "amount": "1",
           "order_id": "o1"}
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate(doc)
    assert first_error(info.value) == "customer_id: must not contain control characters (newline, tab, escape, " \
                                      "\\x1f …)"
    assert quick_transaction(orjson.dumps(doc), 2) is None  # the quick path leaves it to the model
