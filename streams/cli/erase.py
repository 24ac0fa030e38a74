"""``segmenter erase CUSTOMER --reason --by``: erase a customer (right to be forgotten).

The worker that owns the customer removes its record (a tombstone in the changelog), its due entry, its place in
Redis (hash, memberships, sums, tags, last changes) and in the population index, remembers a keyed hash of its id
with the erasure's day so that events dated on or before it (a replay) do not bring it back, and publishes a
``CustomerErased`` on the segment-changes topic, on which the action worker drops its ledger entry and downstream
consumers delete their copies; the action worker then removes the customer from its manager sets and its outcome
documents in Redis. This command also writes tombstones for the customer's overrides, manual tags and profile, so
compaction removes them, records the erasure in the erasure log (the keyed hash and the time: streams/kafka/erasures.py)
that ``restore`` re-applies, and waits for the owning worker's ``CustomerErased``. It needs SEGMENTER_ERASURE_KEY.
What stays, and until when, is listed in docs/security.md.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from datetime import UTC, datetime

import orjson
from aiokafka import TopicPartition

from schemas.events import NO_CONTROL
from segmenter.privacy import erased_key
from streams.cli.common import CliError, load_settings, who
from streams.kafka.erasures import log_erasure
from streams.kafka.reading import latest, read_from, true_ends
from streams.kafka.topics import Record, create_topics, customer_partition, produce_records
from streams.names import Names, customer_key
from streams.settings import Settings
from streams.text import clip

KEY_HOWTO = ("set SEGMENTER_ERASURE_KEY (the same on every worker) to a secret of at least 16 characters, e.g. from "
             "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")


async def erase(settings: Settings, customer: str, reason: str, by: str) -> tuple[int, TopicPartition, int]:
    """Send the erasure to the customer's partition and tombstones for its operators' records, and log it; returns
    how many tombstones, and where on the segment-changes topic the worker's confirmation will follow."""
    secret = settings.erasure_secret()
    if secret is None:
        raise CliError(f"erasure refused: no erasure key; {KEY_HOWTO}")
    if not customer or len(customer) > 256 or not re.fullmatch(NO_CONTROL, customer):
        raise CliError(f"{clip(customer)!r} is not a customer id (1-256 characters, no control characters)")
    names = Names(settings.topic_prefix)
    await create_topics(settings)
    partition = customer_partition(settings, customer)
    changes = TopicPartition(names.segment_changes, partition)
    start = (await true_ends(settings, [names.segment_changes]))[changes]
    prefix = customer_key(customer, "")
    records: list[Record] = []
    for topic in (names.overrides, names.tags):
        keys = {key for key in await latest(settings, topic, partition) if key.startswith(prefix)}  # its partition
        records += [(topic, key, None, partition) for key in sorted(keys)]
    records.append((names.profiles, customer.encode(), None, partition))
    at = datetime.now(UTC)
    doc = {"type": "erase", "customer_id": customer, "reason": reason, "by": by, "at": at.isoformat()}
    records.append((names.control, b"erase", orjson.dumps(doc), partition))
    await log_erasure(settings, erased_key(customer, secret), at)
    await produce_records(settings, records)
    return len(records) - 1, changes, start


async def confirmed(settings: Settings, customer: str, changes: TopicPartition, start: int, timeout_s: float) -> bool:
    """Whether the owning worker published the customer's ``CustomerErased`` within ``timeout_s``."""
    deadline, position = time.monotonic() + timeout_s, start
    while True:
        for _, offset, _, value in await read_from(settings, {changes: position}):
            position = offset + 1
            doc = orjson.loads(value)
            if doc.get("type") == "erasure" and doc.get("customer_id") == customer:
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)


def cmd_erase(args: argparse.Namespace) -> int:
    settings = load_settings()
    tombstones, changes, start = asyncio.run(erase(settings, args.customer, args.reason, who(args.by)))
    print(f"{clip(args.customer)}: erasure sent and logged ({tombstones} tombstone(s) for its profile, overrides and "
          "tags)")
    if args.timeout <= 0:
        return 0
    if asyncio.run(confirmed(settings, args.customer, changes, start, args.timeout)):
        print("the owning worker erased it and published the erasure; the action worker drops its ledger next")
        return 0
    print(f"error: no worker confirmed the erasure within {args.timeout:.0f}s: is a worker running, with "
          "SEGMENTER_ERASURE_KEY set (see the dead letters)? The erasure stays queued for it", file=sys.stderr)
    return 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("erase", help="erase a customer: state, read model, overrides, tags, ledger; logged by a keyed "
                                     "hash (needs SEGMENTER_ERASURE_KEY)")
    p.add_argument("customer")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who (default: $USER)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the owning worker's confirmation (0: do not wait)")
    p.set_defaults(func=cmd_erase)
