"""Inbound events: transactions, interactions, profiles, overrides, manual tags.

Every event carries ``event_id`` (the producer's idempotency key), ``customer_id`` (the key
on every topic) and ``occurred_at`` (event time, timezone-aware).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field, TypeAdapter, field_validator

from schemas.base import InboundModel

NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]+$"
"""Text without control characters: no newline, escape, unit separator (the key separator of tags and
overrides), C1 control or Unicode line separator can reach a key, a log line or a terminal."""
NonEmpty = Annotated[str, Field(min_length=1, max_length=256, pattern=NO_CONTROL)]
Label = Annotated[str, Field(max_length=256)]  # free text a worker stores or logs: bounded like the ids

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def _not_ancient(value: datetime) -> datetime:
    if value < EARLIEST:
        raise ValueError("must be in 1970 or later")
    return value


EventTime = Annotated[AwareDatetime, AfterValidator(_not_ancient)]
"""An event time: with its offset, from 1970 on (workers refuse times far ahead of the wall clock too)."""

AMOUNT_LIMIT = Decimal(10) ** 15
"""The contract's ceiling on one ``amount`` (major units). Operators set a lower one, ``max_amount`` (10^12 by
default): past it a transaction goes to dead letters, so sums stay exact integers in every store."""


class Transaction(InboundModel):
    """A purchase or a refund. A refund lowers the monetary sums and is not a purchase."""

    type: Literal["transaction"] = "transaction"
    event_id: NonEmpty
    customer_id: NonEmpty
    occurred_at: EventTime
    kind: Literal["purchase", "refund"] = "purchase"
    amount: Decimal = Field(description="Money moved in major units, never negative, below 10^15 (the operator's "
                            "max_amount setting is lower: 10^12 by default); a refund is kind=refund.")
    currency: Annotated[str, Field(min_length=3, max_length=3)] = "CNY"
    order_id: NonEmpty
    category: Label | None = None
    channel: Label | None = None
    profit: Annotated[Decimal, Field(ge=-AMOUNT_LIMIT, le=AMOUNT_LIMIT)] | None = None

    @field_validator("amount")
    @classmethod
    def _amount_is_finite_and_not_negative(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("amount must be a finite number")
        if value < 0:
            raise ValueError("amount must not be negative; a refund is kind=refund with a positive amount")
        if value >= AMOUNT_LIMIT:
            raise ValueError("amount must be below 10^15")
        return value


class Interaction(InboundModel):
    """A non-monetary touch: visit, consult, complaint, praise, campaign, referral, survey …"""

    type: Literal["interaction"] = "interaction"
    event_id: NonEmpty
    customer_id: NonEmpty
    occurred_at: EventTime
    kind: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
    channel: Label | None = None
    satisfaction: Annotated[int, Field(ge=1, le=5)] | None = None


class Profile(InboundModel):
    """Customer attributes (compacted topic, key = customer_id). Rules may read them."""

    type: Literal["profile"] = "profile"
    customer_id: NonEmpty
    event_id: str | None = None
    customer_type: Literal["individual", "enterprise"] | None = None
    industry: Label | None = None
    region: Label | None = None
    size: Label | None = None
    created_at: EventTime | None = None
    birth_date: date | None = Field(None, description="For `on: birthday` actions; kept in the customer's record, "
                                    "never published with its changes.")

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth(cls, value: date | None) -> date | None:
        if value is not None and not date(1900, 1, 1) <= value <= date(2100, 12, 31):
            raise ValueError("a birth date is between 1900-01-01 and 2100-12-31")
        return value


class Override(InboundModel):
    """Pin one dimension of a customer to a segment by hand (compacted, key = customer_id)."""

    type: Literal["override"] = "override"
    event_id: NonEmpty
    customer_id: NonEmpty
    dimension: NonEmpty
    segment: str | None = Field(None, description="None clears the pin.")
    by: NonEmpty
    reason: NonEmpty
    occurred_at: EventTime
    expires_at: AwareDatetime | None = None


TagName = Annotated[str, Field(pattern=r"^[\w.:/-]+$", min_length=1, max_length=128,
                                description="Like vip:gold or 行业:制造业: letters, digits, and . : / _ -")]


class ManualTag(InboundModel):
    """Add or remove a tag by hand (compacted, key = customer_id + "\\x1f" + tag, partitioned by customer_id)."""

    type: Literal["tag"] = "tag"
    event_id: NonEmpty
    customer_id: NonEmpty
    tag: TagName
    present: bool = Field(description="True adds the tag, False removes the manual tag.")
    by: NonEmpty
    reason: NonEmpty
    occurred_at: EventTime


CustomerEvent = Annotated[Transaction | Interaction, Field(discriminator="type")]

TRANSACTION_ADAPTER: TypeAdapter[Transaction] = TypeAdapter(Transaction)
INTERACTION_ADAPTER: TypeAdapter[Interaction] = TypeAdapter(Interaction)
PROFILE_ADAPTER: TypeAdapter[Profile] = TypeAdapter(Profile)
OVERRIDE_ADAPTER: TypeAdapter[Override] = TypeAdapter(Override)
MANUAL_TAG_ADAPTER: TypeAdapter[ManualTag] = TypeAdapter(ManualTag)
