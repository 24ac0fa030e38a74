"""Reduce schema events to core facts (money to minor units, time to business days)."""

from __future__ import annotations

from datetime import datetime

from schemas.events import Interaction, Profile, Transaction
from segmenter.occasions import BIRTH_DATE
from segmenter.policy import Policy
from segmenter.state import INTERACTION, PURCHASE, REFUND, Fact, hash_event_id, new_tuple


def fact_of_transaction(tx: Transaction, policy: Policy) -> Fact:
    return transaction_fact(tx.event_id, tx.occurred_at, tx.kind == "refund", policy.to_minor(tx.amount), policy,
                            category=tx.category or "",
                            profit=None if tx.profit is None else policy.to_minor(tx.profit))


def transaction_fact(event_id: str, occurred: datetime, refund: bool, minor: int, policy: Policy, *,
                     category: str = "", profit: int | None = None) -> Fact:
    return new_tuple(Fact, (policy.calendar.day(occurred), REFUND if refund else PURCHASE, minor,
                            hash_event_id(event_id), False, False, 0, category, profit))  # every field


def fact_of_interaction(ix: Interaction, policy: Policy) -> Fact:
    return interaction_fact(ix.event_id, ix.occurred_at, ix.kind, ix.satisfaction or 0, policy)


def interaction_fact(event_id: str, occurred: datetime, kind: str, satisfaction: int, policy: Policy) -> Fact:
    return Fact(
        day=policy.calendar.day(occurred),
        kind=INTERACTION,
        id_hash=hash_event_id(event_id),
        complaint=kind == "complaint",
        referral=kind == "referral",
        satisfaction=satisfaction,
    )


def profile_attributes(profile: Profile) -> dict[str, str | None]:
    """The ``profile.*`` values rules can read, and the birth date where one is given (``occasions``)."""
    return {
        "profile.type": profile.customer_type,
        "profile.region": profile.region,
        "profile.industry": profile.industry,
        "profile.size": profile.size,
        **({BIRTH_DATE: profile.birth_date.isoformat()} if profile.birth_date is not None else {}),
    }
