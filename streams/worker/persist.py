"""What a flush makes durable: producer batches to a topic, and changelog + store writes of a snapshot."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from streams.kafka import faust_compat
from streams.kafka.fetched import TP
from streams.readmodel.rows import ProjectedCustomer

log = logging.getLogger("segmenter.worker")


class Delivery(NamedTuple):
    """A producer batch handed over: ``partition`` of the segment-change topic (None: another topic's), its
    delivery future (the batch's base offset), and how many records it holds."""

    partition: int | None
    future: asyncio.Future[Any]
    records: int


@dataclass
class Snapshot:
    """What a flush writes. Taken at once; the changed customers' records (immutable values) are
    encoded afterwards, in slices, into ``customers`` (per partition) and ``projected``."""

    changed: list[tuple[int, int, int | None, str, Any, Any]]  # partition, its epoch, its day, customer, record,
    # its changes since the last snapshot (change id, story entry)
    meta: dict[int, dict[str, Any]]  # partition -> its meta document; changes_end is set once the changes are out
    clocks: dict[int, tuple[str, int]]
    offsets: dict[TP, int]
    deliveries: list[Delivery]
    customers: dict[int, list[tuple[bytes, bytes | None]]] = field(default_factory=dict)  # None: a tombstone
    erased: list[str] = field(default_factory=list)  # customers to take out of Redis before this flush's rows
    projected: list[ProjectedCustomer] = field(default_factory=list)
    replaying: set[int] = field(default_factory=set)  # partitions whose published changes are not all checked yet


async def send_batches(producer: AIOKafkaProducer, topic: str, partition: int,
                       records: Sequence[tuple[bytes | None, bytes | None]]) -> list[tuple[asyncio.Future[Any], int]]:
    """Whole producer batches: (delivery future, record count) per batch; a batch reports its base offset."""
    sent = []
    batch, count = producer.create_batch(), 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit a producer batch")
        count += 1
    if count:
        sent.append((await producer.send_batch(batch, topic, partition=partition), count))
    return sent


async def persist(producer: AIOKafkaProducer, table: Any,
                  groups: Mapping[int, list[tuple[bytes, bytes | None]]]) -> None:
    """Changelog first (acknowledged), then the local store and the changelog offset it holds."""
    topic = table.changelog_topic.get_topic_name()
    pending = [(partition, writes, await send_batches(producer, topic, partition, writes))
               for partition, writes in groups.items() if writes]
    for partition, writes, sent in pending:
        results = await asyncio.gather(*(f for f, _ in sent))
        faust_compat.store_write(table, partition, writes)
        faust_compat.set_persisted_offset(table, partition, results[-1].offset + sent[-1][1] - 1)
