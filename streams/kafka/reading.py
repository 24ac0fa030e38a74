"""Reading topics up to their true end (taken from a fetch, since some brokers under-report it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.kafka.security import kafka_options
from streams.kafka.topics import started
from streams.settings import Settings


async def fetched_ends(options: Mapping[str, Any], partitions: list[Any], listed: Mapping[Any, int]
                       ) -> dict[Any, int]:
    """The true end of each partition: the high watermark a fetch returns (never below ``listed``); ``options``:
    the client's (``security.kafka_options``).

    Some Kafka-protocol brokers answer ListOffsets(latest) with the base offset of the last record
    batch; a fetch from just before that point returns the real high watermark."""
    wanted = list(partitions)  # a partition holding one batch is reported as 0: probe them all
    ends = {tp: listed.get(tp, 0) for tp in wanted}
    if not wanted:
        return ends
    probe = AIOKafkaConsumer(**options, enable_auto_commit=False, fetch_max_wait_ms=50)
    await started(probe)
    try:
        probe.assign(wanted)
        for tp in wanted:
            probe.seek(tp, max(ends[tp] - 1, 0))
        for _ in range(25):
            await probe.getmany(timeout_ms=200, max_records=1)
            if all(probe.highwater(tp) is not None for tp in wanted):
                break
        for tp in wanted:
            found = probe.highwater(tp)
            if found is not None:
                ends[tp] = max(found, ends[tp])
    finally:
        await probe.stop()
    return ends


async def true_ends(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """Each partition's end offset, taken from a fetch (see ``fetched_ends``)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await started(consumer)
    try:
        tps = await _partitions(consumer, topics)
        listed = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    return await fetched_ends(kafka_options(settings), tps, listed)


async def partitions_of(settings: Settings, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of ``topics``, from the cluster's metadata (no offsets read)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await started(consumer)
    try:
        return await _partitions(consumer, topics)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    await consumer.topics()
    return [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]


async def tail(settings: Settings, topic: str, fetch_max_wait_ms: int = 10) -> AIOKafkaConsumer:
    """A started consumer (no group) positioned at the current end of every partition of ``topic``."""
    ends = await true_ends(settings, [topic])
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False,
                                fetch_max_wait_ms=fetch_max_wait_ms)
    await started(consumer)
    consumer.assign(list(ends))
    for tp, end in ends.items():
        consumer.seek(tp, end)
    return consumer


async def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` up to its current true end, as (key, value), partition by partition."""
    ends = await true_ends(settings, [topic])
    found = await read_from(settings, dict.fromkeys(ends, 0), ends)
    return [(key, value) for _, _, key, value in found]


async def latest(settings: Settings, topic: str, partition: int | None = None) -> dict[bytes, bytes]:
    """A compacted topic as it stands (or only its ``partition``): the newest value of each key (a tombstone, a null
    value, removes the key)."""
    return {key: value for (_, key), value in (await latest_by_partition(settings, topic, partition)).items()}


async def latest_by_partition(settings: Settings, topic: str,
                              partition: int | None = None) -> dict[tuple[int, bytes], bytes]:
    """The same, with each key's partition: (partition, key) -> newest value, in partition and key order."""
    ends = {tp: end for tp, end in (await true_ends(settings, [topic])).items()
            if partition is None or tp.partition == partition}
    newest: dict[tuple[int, bytes], bytes | None] = {}
    for tp, _, key, value in await read_from(settings, dict.fromkeys(ends, 0), ends):
        if key is not None:
            newest[tp.partition, key] = value
    return {pk: v for pk, v in sorted(newest.items()) if v is not None}


async def read_from(settings: Settings, starts: Mapping[TopicPartition, int],
                    ends: Mapping[TopicPartition, int] | None = None) -> list[tuple[TopicPartition, int, bytes | None,
                                                                                     bytes]]:
    """The records of each partition from its start offset up to its true end (or ``ends``), as
    (partition, offset, key, value) in partition and offset order."""
    if ends is None:
        ends = await fetched_ends(kafka_options(settings), list(starts), {})
    pending = {tp for tp, start in starts.items() if ends.get(tp, 0) > start}
    if not pending:
        return []
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await started(consumer)
    found: list[tuple[TopicPartition, int, bytes | None, bytes]] = []
    try:
        consumer.assign(sorted(pending))
        for tp in pending:
            consumer.seek(tp, starts[tp])
        while pending:
            for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                found.extend((tp, m.offset, m.key, m.value) for m in messages if m.offset < ends[tp])
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return sorted(found, key=lambda r: (r[0].topic, r[0].partition, r[1]))
