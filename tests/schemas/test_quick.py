"""The quick reading of canonical events against the pydantic models (the contract)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.events import AMOUNT_LIMIT, INTERACTION_ADAPTER, TRANSACTION_ADAPTER
from schemas.quick import quick_interaction, quick_transaction
from segmenter.policy import Policy

ABSENT = object()
ids = st.one_of(st.sampled_from(["e1", "C-001", " e1", "e1 ", "", "x" * 256, "x" * 257, "\u3000a", "a\x1f",
                                 "a\u0085", "客户7", "\x00"]),
                st.text(max_size=8), st.integers(-2**63, 2**63 - 1), st.none())
offsets = st.sampled_from(["Z", "+00:00", "-00:00", "+08:00", "-05:30", "+23:59", "+24:00", "+0800", "", "z"])
instants = st.one_of(
    st.builds(lambda d, frac, off, sep: d.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + off,
              st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
              st.sampled_from(["", ".5", ".123456", ".1234567", "."]), offsets, st.sampled_from(["T", " ", "t"])),
    st.sampled_from(["2025-02-29T10:00:00Z", "2025-13-01T00:00:00Z", "2025-07-01T24:00:00Z",
                     "2025-07-01T23:59:60Z", "2025-07-01", "2025-07-01T10:00Z", "20250701T100000Z",
                     "2025-07-01T10:00:00.000000+08:00", "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00",
                     "1970-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01"]),
    st.integers(0, 2**40), st.text(max_size=30))
amounts = st.one_of(
    st.integers(-10, 2**63 - 1),
    st.decimals(allow_nan=True, allow_infinity=True, places=4).map(str),
    st.sampled_from(["1e400", "999999999999999", "1000000000000000", "999999999999999.99",
                     "1.5", "01.50", "1.505", "1.500", "1e3", " 1", "1 ", "-0", "+1", "NaN", "Infinity", "1.",
                     ".5", "0", "0.00", "1_000", "١٢", "99999999999999999999.99"]),
    st.floats(allow_nan=False), st.booleans(), st.none())
plain = st.one_of(st.none(), st.text(max_size=4), st.integers(0, 9), st.just(" "))


def _near(valid: dict[str, object], fields: dict[str, st.SearchStrategy[object]]) -> st.SearchStrategy[object]:
    """A valid document with up to three fields replaced or removed: near-misses find the boundaries."""
    names = sorted(fields)
    changes = st.dictionaries(st.sampled_from(names), st.none(), max_size=3).flatmap(
        lambda chosen: st.fixed_dictionaries({k: st.one_of(st.just(ABSENT), fields[k]) for k in chosen}))
    return changes.map(lambda changed: {k: v for k, v in {**valid, **changed}.items() if v is not ABSENT})


transactions = _near(
    {"event_id": "e1", "customer_id": "C1", "occurred_at": "2025-07-01T10:00:00+08:00", "amount": "12.30",
     "order_id": "o1"},
    {"type": st.sampled_from(["transaction", "interaction", None]), "event_id": ids, "customer_id": ids,
     "occurred_at": instants, "kind": st.sampled_from(["purchase", "refund", "Purchase", " refund", None]),
     "amount": amounts, "currency": st.sampled_from(["CNY", "usd", "EURO", "CN", " CN", None]), "order_id": ids,
     "category": plain, "channel": plain, "profit": st.sampled_from([None, "1.5", -1]), "extra": plain})

interactions = _near(
    {"event_id": "e1", "customer_id": "C1", "occurred_at": "2025-07-01T10:00:00Z", "kind": "visit"},
    {"type": st.sampled_from(["interaction", "transaction", None]), "event_id": ids, "customer_id": ids,
     "occurred_at": instants,
     "kind": st.one_of(st.sampled_from(["visit", "complaint", "referral", "a" * 64, "a" * 65, "Visit", "9x", "a-b",
                                        "a\n", "", " visit"]), st.text(max_size=5)),
     "channel": plain, "satisfaction": st.one_of(st.integers(-1, 7), st.sampled_from([3.0, True, "3"]), st.none())})


def _same_instant(quick: datetime, model: datetime) -> bool:
    return quick == model and quick.utcoffset() == model.utcoffset() and quick.isoformat() == model.isoformat()


@settings(max_examples=1500, deadline=None)
@given(transactions, st.sampled_from([0, 2, 3]))
@example({"event_id": "e1", "customer_id": "C1", "occurred_at": "2025-07-01T10:00:00+08:00", "amount": "12.30",
          "order_id": "o1"}, 2)
def test_a_quick_transaction_reads_what_the_model_reads(doc, scale):
    raw = orjson.dumps(doc)
    quick = quick_transaction(raw, scale)
    if quick is None:
        return  # the worker validates it with the model
    tx = TRANSACTION_ADAPTER.validate_json(raw)  # the quick path accepted it: the model must too
    customer, event_id, occurred, refund, minor, category = quick
    assert (customer, event_id, refund, category) == (tx.customer_id, tx.event_id, tx.kind == "refund",
                                                      tx.category or "")
    assert _same_instant(occurred, tx.occurred_at)
    assert minor == Policy(money_scale=scale, max_amount=AMOUNT_LIMIT).to_minor(tx.amount)  # the bound is the edge's


@settings(max_examples=800, deadline=None)
@given(interactions)
def test_a_quick_interaction_reads_what_the_model_reads(doc):
    raw = orjson.dumps(doc)
    quick = quick_interaction(raw)
    if quick is None:
        return
    ix = INTERACTION_ADAPTER.validate_json(raw)
    customer, event_id, occurred, kind, satisfaction = quick
    assert (customer, event_id, kind, satisfaction) == (ix.customer_id, ix.event_id, ix.kind, ix.satisfaction or 0)
    assert _same_instant(occurred, ix.occurred_at)


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1)),
       st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30))]),
       st.decimals(min_value=0, max_value=10**9, places=2), st.booleans())
def test_canonical_documents_take_the_quick_path(when, zone, amount, refund):
    """What producers send (and ``streams.cli.demo_data`` and the benches generate) is read quickly."""
    doc = {"event_id": "e-1", "customer_id": "C-1", "occurred_at": when.replace(tzinfo=zone).isoformat(),
           "kind": "refund" if refund else "purchase", "amount": str(amount), "order_id": "o-1", "channel": "web"}
    quick = quick_transaction(orjson.dumps(doc), 2)
    assert quick is not None
    assert quick[3] is refund
    assert quick[4] == int(amount * 100)
    visit = {"event_id": "e-2", "customer_id": "C-1", "occurred_at": doc["occurred_at"], "kind": "visit",
             "satisfaction": 4}
    assert quick_interaction(orjson.dumps(visit)) is not None


@pytest.mark.parametrize("raw", [b"[1]", b"not json", None, b"", b'"text"', b'{"amount": NaN}'])
def test_anything_but_a_json_object_is_left_to_the_model(raw):
    assert quick_transaction(raw, 2) is None
    assert quick_interaction(raw) is None


@pytest.mark.parametrize(("field", "value"), [("amount", "1.505"), ("amount", "1.500"), ("amount", 1.5),
                                              ("occurred_at", "2025-07-01T10:00:00"), ("profit", "3")])
def test_forms_the_quick_path_leaves_to_the_model(field, value):
    doc = {"event_id": "e1", "customer_id": "C1", "occurred_at": "2025-07-01T10:00:00Z", "amount": "1",
           "order_id": "o1", field: value}
    assert quick_transaction(orjson.dumps(doc), 2) is None
