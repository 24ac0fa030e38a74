"""The edge of the worker: input records decoded and validated, or refused with a reason.

A decoder returns ``(operation, arguments)`` for the engine to apply to the partition; bad input
raises one of ``BAD_INPUT`` and goes to the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import (
    INTERACTION_ADAPTER,
    MANUAL_TAG_ADAPTER,
    OVERRIDE_ADAPTER,
    PROFILE_ADAPTER,
    TRANSACTION_ADAPTER,
)
from schemas.quick import quick_interaction, quick_transaction
from segmenter.errors import SegmenterError
from segmenter.facts import (
    fact_of_interaction,
    fact_of_transaction,
    interaction_fact,
    profile_attributes,
    transaction_fact,
)
from segmenter.policy import Policy
from segmenter.rules import load_ruleset
from segmenter.step import ManualTag, Override
from streams.kafka.fetched import Record
from streams.names import Names, customer_key
from streams.settings import Settings
from streams.text import clip

BAD_INPUT = (ValidationError, SegmenterError, ValueError, KeyError, TypeError)
FACT, PROFILE, TICK, RULES, RETIRE, OVERRIDE, TAG, ERASE, SKIP = (
    "fact", "profile", "tick", "rules", "retire", "override", "tag", "erase", "skip")
Decoded = tuple[str, tuple[Any, ...]]


def _check_key(record: Record, customer: str, name: str, what: str, field: str) -> None:
    """An operator's record is keyed by customer and ``field`` (``names.customer_key``): a bad input otherwise."""
    if record.key != customer_key(customer, name):
        raise ValueError(f"{what} key {clip(record.key) if record.key is not None else None!r} is not customer_id, "
                         f"\\x1f, {field} ({clip(customer)!r}, {clip(name)!r})")


class Edge:
    def __init__(self, settings: Settings, names: Names, policy: Policy) -> None:
        self.policy, self.future_skew = policy, settings.future_skew
        self.can_erase = settings.erasure_key is not None
        self._skew = timedelta(days=settings.future_skew_days)
        self._latest_allowed = datetime.now(UTC) + self._skew
        self.decoders: dict[str, Callable[[Any], Decoded]] = {
            names.transactions: self.transaction, names.interactions: self.interaction,
            names.profiles: self.profile, names.overrides: self.override, names.tags: self.tag,
            names.control: self.control}

    def new_batch(self) -> None:
        """The wall clock, read once per batch rather than per record, bounds event times."""
        self._latest_allowed = datetime.now(UTC) + self._skew

    def transaction(self, record: Record) -> Decoded:
        quick = quick_transaction(record.value, self.policy.money_scale)  # the canonical form, read fast
        if quick is None:
            tx = TRANSACTION_ADAPTER.validate_json(record.value or b"")  # any other form: the contract decides
            self._check(record, tx.customer_id, tx.occurred_at)
            return FACT, (tx.customer_id, tx.event_id, tx.occurred_at, fact_of_transaction(tx, self.policy))
        customer, event_id, occurred, refund, minor, category = quick
        self._check(record, customer, occurred)
        minor = self.policy.check_minor(minor)
        return FACT, (customer, event_id, occurred, transaction_fact(event_id, occurred, refund, minor, self.policy,
                                                                     category=category))

    def interaction(self, record: Record) -> Decoded:
        quick = quick_interaction(record.value)
        if quick is None:
            ix = INTERACTION_ADAPTER.validate_json(record.value or b"")
            self._check(record, ix.customer_id, ix.occurred_at)
            return FACT, (ix.customer_id, ix.event_id, ix.occurred_at, fact_of_interaction(ix, self.policy))
        customer, event_id, occurred, kind, satisfaction = quick
        self._check(record, customer, occurred)
        return FACT, (customer, event_id, occurred, interaction_fact(event_id, occurred, kind, satisfaction,
                                                                     self.policy))

    def profile(self, record: Record) -> Decoded:
        if record.value is None:
            return SKIP, ()  # a tombstone (an erased customer's profile): compaction's, nothing to apply
        profile = PROFILE_ADAPTER.validate_json(record.value)
        self._check(record, profile.customer_id, None)
        key = profile.event_id or f"profile@{record.offset}"
        return PROFILE, (profile.customer_id, profile_attributes(profile), key)

    def override(self, record: Record) -> Decoded:
        if record.value is None:
            return SKIP, ()
        doc = OVERRIDE_ADAPTER.validate_json(record.value)
        _check_key(record, doc.customer_id, doc.dimension, "override", "dimension")
        until = None if doc.expires_at is None else self.policy.calendar.day(doc.expires_at)
        pin = None if doc.segment is None else Override(doc.dimension, doc.segment, until, doc.by, doc.reason,
                                                   doc.event_id)
        return OVERRIDE, (doc.customer_id, doc.dimension, pin, doc.event_id)

    def tag(self, record: Record) -> Decoded:
        if record.value is None:
            return SKIP, ()
        doc = MANUAL_TAG_ADAPTER.validate_json(record.value)
        _check_key(record, doc.customer_id, doc.tag, "tag", "tag")
        mark = ManualTag(doc.tag, doc.by, doc.reason, doc.event_id) if doc.present else None
        return TAG, (doc.customer_id, doc.tag, mark, doc.event_id)

    def control(self, record: Record) -> Decoded:
        doc = orjson.loads(record.value or b"")
        if doc["type"] == "tick":
            return TICK, (datetime.fromisoformat(doc["to"]),)
        if doc["type"] == "rules":
            return RULES, (load_ruleset(doc["yaml"], doc.get("source", "rules"), self.policy.money_scale),)
        if doc["type"] == "retire":
            return RETIRE, (str(doc["id"]),)
        if doc["type"] == "erase":
            if not self.can_erase:
                raise ValueError("an erasure, and this worker has no SEGMENTER_ERASURE_KEY: set the key `segmenter "
                                 "erase` ran with on every worker, then send the erasure again")
            return ERASE, (str(doc["customer_id"]), datetime.fromisoformat(doc["at"]), str(doc["reason"]),
                           str(doc["by"]))
        raise ValueError(f"unknown control record type {doc['type']!r}")

    def _check(self, record: Record, customer: str, occurred: datetime | None) -> None:
        if record.key != customer.encode():
            raise ValueError(f"record key {clip(record.key) if record.key is not None else None!r} is not its "
                             f"customer_id {clip(customer)!r}")
        if occurred is not None and occurred > self._latest_allowed:
            raise ValueError(f"occurred_at {occurred.isoformat()} is more than {self.future_skew} "
                             "ahead of the wall clock")
