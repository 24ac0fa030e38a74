"""A quick reading of the hot inbound events in their canonical form; the pydantic models stay the contract.

The worker decodes every transaction and interaction. ``quick_transaction`` / ``quick_interaction``
read a document that is in the canonical form producers send (a JSON object; ids non-empty strings
with no surrounding whitespace; ``occurred_at`` as RFC 3339 with seconds and an offset; ``amount`` a
plain decimal string or a non-negative integer; optional fields absent, null or plain) at about a third
of the model's cost. For anything else they return None, and the caller validates the document with the
model, which accepts the other forms the schema allows and writes every error message.

They never accept a document the model refuses and never read a value differently from it:
``tests/schemas/test_quick.py`` compares both on generated documents, near-misses included.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, TypeGuard

import orjson

from schemas.events import EARLIEST

_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
                      r"(?:Z|[+-][0-9]{2}:[0-9]{2})")
_LIMIT = 10**15  # schemas.events.AMOUNT_LIMIT: 15 digits at most
_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")

# (customer_id, event_id, occurred_at, refund, amount in minor units, category or "")
QuickTransaction = tuple[str, str, datetime, bool, int, str]
# (customer_id, event_id, occurred_at, kind, satisfaction or 0)
QuickInteraction = tuple[str, str, datetime, str, int]


def _object(raw: Any) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return doc if type(doc) is dict else None


def _id(value: Any) -> TypeGuard[str]:
    """A ``NonEmpty`` string the model keeps as it is (its whitespace stripping would change nothing, it holds no
    control character); anything else, such as a no-break space, goes to the model, which decides."""
    return (type(value) is str and 0 < len(value) <= 256 and value.isprintable() and not value[0].isspace()
            and not value[-1].isspace())


def _instant(value: Any) -> datetime | None:
    if type(value) is not str or not _INSTANT.fullmatch(value):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:  # an impossible date or time: the model says which
        return None
    return when if when >= EARLIEST else None


def _plain(value: Any) -> bool:
    """An optional ``Label``: absent, null or a string of at most 256 characters."""
    return value is None or (type(value) is str and len(value) <= 256)


def _digits(text: str, most: int) -> bool:
    """1 to ``most`` ASCII digits (``str.isdigit`` alone takes other scripts' digits and superscripts)."""
    return 0 < len(text) <= most and text.isascii() and text.isdigit()


def _minor(value: Any, scale: int) -> int | None:
    """A non-negative amount in minor units, when it is exactly representable at ``scale``: an integer, or up to 15
    digits, optionally a point and up to 18 more (read without a regular expression: 0.3 µs instead of 0.7)."""
    unit: int = 10**scale
    if type(value) is int:
        return value * unit if 0 <= value < _LIMIT else None
    if type(value) is not str:
        return None
    whole, point, fraction = value.partition(".")
    if not _digits(whole, 15) or (point and not _digits(fraction, 18)):
        return None
    if not fraction:
        return int(whole) * unit
    if len(fraction) > scale:
        return None  # the slow path rounds nothing either: it refuses the extra places, or keeps zeros
    return int(whole) * unit + int(fraction.ljust(scale, "0"))


def quick_transaction(raw: Any, scale: int) -> QuickTransaction | None:
    doc = _object(raw)
    if doc is None:
        return None
    get = doc.get
    customer, event, order = get("customer_id"), get("event_id"), get("order_id")
    kind, currency = get("kind", "purchase"), get("currency", "CNY")
    if not (_id(customer) and _id(event) and _id(order) and get("type", "transaction") == "transaction"
            and kind in ("purchase", "refund") and _id(currency) and len(currency) == 3
            and (get("category") is None or _id(get("category"))) and _plain(get("channel"))
            and get("profit") is None):
        return None
    occurred = _instant(get("occurred_at"))
    amount = _minor(get("amount"), scale)
    if occurred is None or amount is None:
        return None
    return customer, event, occurred, kind == "refund", amount, get("category") or ""


def quick_interaction(raw: Any) -> QuickInteraction | None:
    doc = _object(raw)
    if doc is None:
        return None
    get = doc.get
    customer, event, kind, satisfaction = get("customer_id"), get("event_id"), get("kind"), get("satisfaction")
    if not (_id(customer) and _id(event) and type(kind) is str and _KIND.fullmatch(kind)
            and get("type", "interaction") == "interaction" and _plain(get("channel"))
            and (satisfaction is None or (type(satisfaction) is int and 1 <= satisfaction <= 5))):
        return None
    occurred = _instant(get("occurred_at"))
    if occurred is None:
        return None
    return customer, event, occurred, kind, satisfaction or 0
