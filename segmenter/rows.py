"""Turn rows of a CRM export (CSV as dicts of strings) into schema events. Pure: no file I/O.

A date or a naive time is read in the business timezone. A missing ``event_id`` is derived from
the row's content and how many identical rows came before it, so reading the same file twice
gives the same ids while two identical purchases in one file stay two purchases.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation

from pydantic import ValidationError

from schemas import first_error
from schemas.events import (
    INTERACTION_ADAPTER,
    PROFILE_ADAPTER,
    TRANSACTION_ADAPTER,
    Interaction,
    Profile,
    Transaction,
)
from segmenter.errors import InvalidEventError

Row = dict[str, str | None]


def parse_time(text: str | None, tz: tzinfo, column: str = "occurred_at") -> datetime:
    if not text or not text.strip():
        raise InvalidEventError(f"{column} is missing")
    raw = text.strip()
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(0), tz)
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidEventError(f"{column} {clip_text(raw)!r} is not an ISO 8601 date or time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def clip_text(value: str, limit: int = 40) -> str:
    """A value from a row, cut for a message: a bad row's report stays one short line."""
    return value if len(value) <= limit else f"{value[:limit]}… ({len(value):,} chars)"


def _required(row: Row, column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise InvalidEventError(f"{column} is missing")
    return value


def _optional(row: Row, column: str) -> str | None:
    value = (row.get(column) or "").strip()
    return value or None


def _validation(exc: ValidationError) -> InvalidEventError:
    return InvalidEventError(first_error(exc))


class RowReader:
    """Reads rows of one file; remembers repeated contents to derive stable event ids."""

    def __init__(self, tz: tzinfo, prefix: str, *, by_content: bool = False) -> None:
        """``by_content``: derive every id from the row's content, ignoring the file's ``event_id`` (for a source
        whose ids change from one export to the next)."""
        self.tz = tz
        self.prefix = prefix
        self.by_content = by_content
        self._seen: Counter[str] = Counter()
        self.repeated = 0  # rows whose content an earlier row of the file had (kept: two purchases stay two)

    def _event_id(self, row: Row, fields: tuple[str, ...]) -> str:
        given = None if self.by_content else _optional(row, "event_id")
        if given:
            return given
        content = "\x1f".join((row.get(f) or "").strip() for f in fields)
        self._seen[content] += 1
        self.repeated += self._seen[content] > 1
        digest = hashlib.blake2b(f"{content}\x1e{self._seen[content]}".encode(), digest_size=10)
        return f"{self.prefix}-{digest.hexdigest()}"

    def transaction(self, row: Row) -> Transaction:
        customer = _required(row, "customer_id")
        occurred = parse_time(row.get("occurred_at"), self.tz)
        raw_amount = _required(row, "amount")
        try:
            amount = Decimal(raw_amount)
        except InvalidOperation:
            raise InvalidEventError(f"amount {clip_text(raw_amount)!r} is not a number") from None
        if not amount.is_finite():
            raise InvalidEventError(f"amount {clip_text(raw_amount)!r} is not a finite number")
        kind = (_optional(row, "kind") or ("refund" if amount < 0 else "purchase")).lower()
        if kind == "refund":
            amount = abs(amount)
        raw_profit = _optional(row, "profit")
        profit = None
        if raw_profit is not None:
            try:
                profit = Decimal(raw_profit)
            except InvalidOperation:
                raise InvalidEventError(f"profit {clip_text(raw_profit)!r} is not a number") from None
        event_id = self._event_id(row, ("customer_id", "occurred_at", "amount", "kind", "order_id"))
        try:
            return TRANSACTION_ADAPTER.validate_python({
                "event_id": event_id, "customer_id": customer, "occurred_at": occurred,
                "kind": kind, "amount": amount, "order_id": _optional(row, "order_id") or event_id,
                "currency": _optional(row, "currency") or "CNY", "category": _optional(row, "category"),
                "channel": _optional(row, "channel"), "profit": profit,
            })
        except ValidationError as exc:
            raise _validation(exc) from None

    def interaction(self, row: Row) -> Interaction:
        customer = _required(row, "customer_id")
        occurred = parse_time(row.get("occurred_at"), self.tz)
        sat = _optional(row, "satisfaction")
        event_id = self._event_id(row, ("customer_id", "occurred_at", "kind", "channel", "satisfaction"))
        try:
            return INTERACTION_ADAPTER.validate_python({
                "event_id": event_id, "customer_id": customer, "occurred_at": occurred,
                "kind": _required(row, "kind").lower(), "channel": _optional(row, "channel"),
                "satisfaction": sat,
            })
        except ValidationError as exc:
            raise _validation(exc) from None

    def profile(self, row: Row) -> Profile:
        created = _optional(row, "created_at")
        try:
            return PROFILE_ADAPTER.validate_python({
                "customer_id": _required(row, "customer_id"),
                "event_id": _optional(row, "event_id"),
                "customer_type": _optional(row, "type"), "industry": _optional(row, "industry"),
                "region": _optional(row, "region"), "size": _optional(row, "size"),
                "created_at": parse_time(created, self.tz, "created_at") if created else None,
                "birth_date": _optional(row, "birth_date"),
            })
        except ValidationError as exc:
            raise _validation(exc) from None
