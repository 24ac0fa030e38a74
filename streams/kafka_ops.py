"""Kafka plumbing outside the worker: create topics, produce, measure true ends, lag."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.names import Names
from streams.settings import Settings


def topic_specs(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    n, names = settings.partitions, Names(settings.topic_prefix)
    compact = {"cleanup.policy": "compact"}
    return {
        names.transactions: (n, {}), names.interactions: (n, {}), names.profiles: (n, compact),
        names.control: (n, {}), names.segment_changes: (n, {}), names.dead_letters: (1, {}),
        names.rules: (1, compact),
        names.changelog(names.customers_table): (n, compact),
        names.changelog(names.partitions_table): (n, compact),
    }


async def create_topics(settings: Settings) -> list[str]:
    """Create the topics that are missing, with their partition counts. Returns those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, parts, 1, topic_configs=configs)
                   for name, (parts, configs) in topic_specs(settings).items() if name not in existing]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


def producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5,
                            max_batch_size=262144, acks="all")


async def true_ends(settings: Settings, topics: Iterable[str]) -> dict[TopicPartition, int]:
    """Each partition's end offset, taken from a fetch (some brokers under-report ListOffsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        if not tps:
            await consumer.topics()
            tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        listed = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(listed[tp] - 1, 0))
        ends: dict[TopicPartition, int] = {}
        for _ in range(20):
            await consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp in tps:
                hw = consumer.highwater(tp)
                if hw is not None:
                    ends[tp] = max(hw, listed[tp])
            if len(ends) == len(tps):
                break
        for tp in tps:
            ends.setdefault(tp, listed[tp])
        return ends
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Lag:
    tp: TopicPartition
    end: int
    committed: int

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


async def group_lag(settings: Settings) -> list[Lag]:
    names = Names(settings.topic_prefix)
    ends = await true_ends(settings, names.inputs)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(names.app_id, partitions=list(ends))
    finally:
        await admin.close()
    out = []
    for tp, end in sorted(ends.items()):
        meta = committed.get(tp)
        out.append(Lag(tp, end, meta.offset if meta is not None and meta.offset >= 0 else 0))
    return out
