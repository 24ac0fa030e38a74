"""Kafka plumbing outside the worker: create topics, produce, measure true ends, lag."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.names import Names
from streams.progress import Progress
from streams.settings import Settings


async def started(client: Any) -> Any:
    """``client`` (a consumer, producer or admin client) started; closed again when it cannot start (no broker),
    so a failed command leaves no "Unclosed" warning behind."""
    try:
        await client.start()
    except BaseException:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise
    return client


def topic_specs(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    n, names = settings.partitions, Names(settings.topic_prefix)
    compact = {"cleanup.policy": "compact"}
    return {
        names.transactions: (n, {}), names.interactions: (n, {}), names.profiles: (n, compact),
        names.control: (n, {}), names.segment_changes: (n, {}), names.dead_letters: (1, {}),
        names.rules: (1, compact),
        names.coupons: (n, {}), names.alerts: (n, {}), names.action_audit: (n, {}),
        names.ledger_changelog: (n, compact),
        names.changelog(names.customers_table): (n, compact),
        names.changelog(names.partitions_table): (n, compact),
    }


async def create_topics(settings: Settings) -> list[str]:
    """Create the topics that are missing, with their partition counts. Returns those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await started(admin)
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, parts, 1, topic_configs=configs)
                   for name, (parts, configs) in topic_specs(settings).items() if name not in existing]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """The one producer configuration (acks=all, 5 ms linger); ``options`` override aiokafka's."""
    return AIOKafkaProducer(**{"bootstrap_servers": settings.kafka_bootstrap, "linger_ms": 5,
                               "max_batch_size": 262144, "acks": "all", **options})


Record = tuple[str, bytes | None, bytes, int | None]  # topic, key, value, partition (None: by key)


async def produce_records(settings: Settings, records: Iterable[Record], progress: Progress | None = None) -> int:
    """Send records with one producer and wait until all are acknowledged; returns how many."""
    prod = producer(settings)
    await started(prod)
    count = 0
    try:
        for topic, key, value, partition in records:
            await prod.send(topic, key=key, value=value, partition=partition)
            count += 1
            if progress and count % 2048 == 0:
                progress.update(count)
        await prod.flush()
    finally:
        await prod.stop()
    if progress:
        progress.update(count)
        progress.close()
    return count


async def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` up to its current true end, as (key, value), partition by partition."""
    ends = await true_ends(settings, [topic])
    found = await read_from(settings, dict.fromkeys(ends, 0), ends)
    return [(key, value) for _, _, key, value in found]


async def read_from(settings: Settings, starts: Mapping[TopicPartition, int],
                    ends: Mapping[TopicPartition, int] | None = None) -> list[tuple[TopicPartition, int, bytes | None,
                                                                                     bytes]]:
    """The records of each partition from its start offset up to its true end (or ``ends``), as
    (partition, offset, key, value) in partition and offset order."""
    if ends is None:
        ends = await fetched_ends(settings.kafka_bootstrap, list(starts), {})
    pending = {tp for tp, start in starts.items() if ends.get(tp, 0) > start}
    if not pending:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
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


async def fetched_ends(bootstrap: str, partitions: list[Any], listed: Mapping[Any, int]) -> dict[Any, int]:
    """The true end of each partition: the high watermark a fetch returns (never below ``listed``).

    Some Kafka-protocol brokers answer ListOffsets(latest) with the base offset of the last record
    batch; a fetch from just before that point returns the real high watermark."""
    wanted = list(partitions)  # a partition holding one batch is reported as 0: probe them all
    ends = {tp: listed.get(tp, 0) for tp in wanted}
    if not wanted:
        return ends
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
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
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await started(consumer)
    try:
        await consumer.topics()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        listed = await consumer.end_offsets(tps) if tps else {}
    finally:
        await consumer.stop()
    return await fetched_ends(settings.kafka_bootstrap, tps, listed)


async def tail(settings: Settings, topic: str, fetch_max_wait_ms: int = 10) -> AIOKafkaConsumer:
    """A started consumer (no group) positioned at the current end of every partition of ``topic``."""
    ends = await true_ends(settings, [topic])
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=fetch_max_wait_ms)
    await started(consumer)
    consumer.assign(list(ends))
    for tp, end in ends.items():
        consumer.seek(tp, end)
    return consumer


@dataclass(frozen=True)
class Lag:
    group: str
    tp: TopicPartition
    end: int
    committed: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


def groups(settings: Settings, actions: bool = True) -> dict[str, tuple[str, ...]]:
    """Consumer group -> the topics it consumes: the segmenter workers, and the action workers."""
    names = Names(settings.topic_prefix)
    out = {names.app_id: names.inputs}
    if actions:
        out[names.actions_app_id] = (names.segment_changes, names.control)
    return out


async def group_lag(settings: Settings, actions: bool = True, only: str | None = None) -> list[Lag]:
    """Per group (or only the group ``only``) and topic-partition: the true end, the committed offset and the lag."""
    wanted = {g: topics for g, topics in groups(settings, actions).items() if only is None or g == only}
    ends = await true_ends(settings, sorted({t for topics in wanted.values() for t in topics}))
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await started(admin)
    out = []
    try:
        for group, topics in wanted.items():
            tps = [tp for tp in ends if tp.topic in topics]
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            for tp in sorted(tps):
                meta = committed.get(tp)
                out.append(Lag(group, tp, ends[tp], meta.offset if meta is not None and meta.offset >= 0 else 0))
    finally:
        await admin.close()
    return out
