"""``segmenter erase CUSTOMER --reason --by``: erase a customer (right to be forgotten).

The worker that owns the customer removes its record (a tombstone in the changelog), its due entry, its place in
Redis (hash, memberships, sums, tags, last changes) and in the population index, remembers a keyed hash of its id
with the erasure's day so that events dated on or before it (a replay) do not bring it back, and publishes a
``CustomerErased`` on the segment-changes topic, on which the action worker drops its ledger entry and downstream
consumers delete their copies. This command also writes tombstones for the customer's overrides, manual tags and
profile, so compaction removes them. What stays: the records of the input topics (transactions, interactions)
until their retention deletes them, and the coupons, alerts and audit records already issued, until theirs.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

import orjson

from streams.cli.common import load_settings, who
from streams.kafka.reading import latest
from streams.kafka.topics import Record, create_topics, customer_partition, produce_records
from streams.names import Names, customer_key
from streams.settings import Settings
from streams.text import clip


async def erase(settings: Settings, customer: str, reason: str, by: str) -> int:
    """Send the erasure to the customer's partition and tombstones for its operators' records; returns how many
    tombstones."""
    names = Names(settings.topic_prefix)
    await create_topics(settings)
    partition = customer_partition(settings, customer)
    prefix = customer_key(customer, "")
    records: list[Record] = []
    for topic in (names.overrides, names.tags):
        keys = {key for key in await latest(settings, topic, partition) if key.startswith(prefix)}  # its partition
        records += [(topic, key, None, partition) for key in sorted(keys)]
    records.append((names.profiles, customer.encode(), None, partition))
    doc = {"type": "erase", "customer_id": customer, "reason": reason, "by": by, "at": datetime.now(UTC).isoformat()}
    records.append((names.control, b"erase", orjson.dumps(doc), partition))
    await produce_records(settings, records)
    return len(records) - 1


def cmd_erase(args: argparse.Namespace) -> int:
    settings = load_settings()
    tombstones = asyncio.run(erase(settings, args.customer, args.reason, who(args.by)))
    print(f"{clip(args.customer)}: erasure sent ({tombstones} tombstone(s) for its profile, overrides and tags); the "
          "owning worker removes its state and publishes the erasure. Its input events stay in their topics until "
          "their retention deletes them; older ones replayed are ignored")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("erase", help="erase a customer: state, read model, overrides, tags, ledger; remembered")
    p.add_argument("customer")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who (default: $USER)")
    p.set_defaults(func=cmd_erase)
