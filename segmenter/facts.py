"""Reduce schema events to core facts (money to minor units, time to business days)."""

from __future__ import annotations

from schemas.events import Interaction, Profile, Transaction
from segmenter.state import INTERACTION, PURCHASE, REFUND, Fact, Policy, hash_event_id, new_tuple


def fact_of_transaction(tx: Transaction, policy: Policy) -> Fact:
    return new_tuple(Fact, (policy.calendar.day(tx.occurred_at), PURCHASE if tx.kind == "purchase" else REFUND,
                            policy.to_minor(tx.amount), hash_event_id(tx.event_id), False, False, 0))  # every field


def fact_of_interaction(ix: Interaction, policy: Policy) -> Fact:
    return Fact(
        day=policy.calendar.day(ix.occurred_at),
        kind=INTERACTION,
        id_hash=hash_event_id(ix.event_id),
        complaint=ix.kind == "complaint",
        referral=ix.kind == "referral",
        satisfaction=ix.satisfaction or 0,
    )


def profile_attributes(profile: Profile) -> dict[str, str | None]:
    """The ``profile.*`` values rules can read."""
    return {
        "profile.type": profile.customer_type,
        "profile.region": profile.region,
        "profile.industry": profile.industry,
        "profile.size": profile.size,
    }
