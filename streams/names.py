"""Every name Kafka and Redis see, written once. Renaming a function never renames a topic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Every topic and table carries bytes we encode ourselves (faust stores ``bytes`` types raw).
RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


@dataclass(frozen=True, slots=True)
class Names:
    prefix: str = "segmenter."

    @property
    def app_id(self) -> str:  # the consumer group and the changelog topic prefix
        return f"{self.prefix}worker"

    @property
    def transactions(self) -> str:
        return f"{self.prefix}transactions"

    @property
    def interactions(self) -> str:
        return f"{self.prefix}interactions"

    @property
    def profiles(self) -> str:
        return f"{self.prefix}profiles"

    @property
    def control(self) -> str:  # ticks and ruleset adoption, one record per partition
        return f"{self.prefix}control"

    @property
    def rules(self) -> str:
        return f"{self.prefix}rules"

    @property
    def overrides(self) -> str:  # manual overrides, key customer_id + "\x1f" + dimension, co-partitioned by customer
        return f"{self.prefix}overrides"

    @property
    def tags(self) -> str:  # manual tags, key customer_id + "\x1f" + tag, co-partitioned by customer
        return f"{self.prefix}tags"

    @property
    def population(self) -> str:  # each partition's summary of its ranked values, key p<partition>
        return f"{self.prefix}population"

    @property
    def rules_history(self) -> str:  # every version ever applied, key id@version
        return f"{self.prefix}rules-history"

    @property
    def erasures(self) -> str:  # the erasure log: key = the keyed hash of an erased id, never the id
        return f"{self.prefix}erasures"

    @property
    def segment_changes(self) -> str:
        return f"{self.prefix}segment-changes"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}dead-letters"

    @property
    def coupons(self) -> str:
        return f"{self.prefix}coupons"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    def publish(self, name: str) -> str:
        """The topic of a ruleset's ``publish`` action named ``name``."""
        return f"{self.prefix}publish.{name}"

    @property
    def action_audit(self) -> str:  # suppressed actions, with the reason
        return f"{self.prefix}action-audit"

    @property
    def actions_app_id(self) -> str:  # the action workers' consumer group and changelog prefix
        return f"{self.prefix}actions"

    ledger_table: str = "action-ledger"
    actions_agent: str = "segmenter.actions.changes"

    @property
    def ledger_changelog(self) -> str:
        return f"{self.actions_app_id}-{self.ledger_table}-changelog"

    @property
    def inputs(self) -> tuple[str, ...]:
        """Topics the worker group consumes (all co-partitioned, keyed by customer_id)."""
        return (self.transactions, self.interactions, self.profiles, self.overrides, self.tags, self.control)

    customers_table: str = "customers"
    partitions_table: str = "partitions"
    events_agent: str = "segmenter.events"
    clock_timer: str = "segmenter.clock"

    def changelog(self, table: str) -> str:
        return f"{self.app_id}-{table}-changelog"

    @property
    def redis(self) -> str:
        return self.prefix.rstrip(".")


def customer_key(customer_id: str, name: str) -> bytes:
    """The key of an operator's record of a customer: one compacted record per customer and dimension (an override)
    or tag (a manual tag). Its partition is the customer's, chosen from the customer id, not from this key."""
    return f"{customer_id}\x1f{name}".encode()
