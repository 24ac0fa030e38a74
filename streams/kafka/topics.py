"""Topics: create them with their partition counts, produce to them, read them back."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from streams.kafka.security import kafka_options
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
        names.overrides: (n, compact), names.tags: (n, compact),
        names.control: (n, {}), names.segment_changes: (n, {}), names.dead_letters: (1, {}),
        names.rules: (1, compact), names.rules_history: (1, compact), names.population: (1, compact),
        names.erasures: (1, compact),
        names.coupons: (n, {}), names.alerts: (n, {}), names.action_audit: (n, {}),
        names.ledger_changelog: (n, compact),
        names.changelog(names.customers_table): (n, compact),
        names.changelog(names.partitions_table): (n, compact),
    }


async def missing_topics(settings: Settings, *, create: bool = False, extra: Iterable[str] = ()) -> list[str]:
    """The topics of ``topic_specs`` (and ``extra`` ones, with the input's partition count: publish actions') the
    broker does not have (a metadata round trip); with ``create``, created with their partition counts and
    settings."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await started(admin)
    try:
        existing = set(await admin.list_topics())
        specs = {**{name: (settings.partitions, {}) for name in extra}, **topic_specs(settings)}
        missing = [NewTopic(name, parts, 1, topic_configs=configs)
                   for name, (parts, configs) in specs.items() if name not in existing]
        if missing and create:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def create_topics(settings: Settings, extra: Iterable[str] = ()) -> list[str]:
    """Create the topics that are missing, with their partition counts. Returns those created."""
    return await missing_topics(settings, create=True, extra=extra)


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """The one producer configuration (acks=all, 5 ms linger); ``options`` override aiokafka's."""
    return AIOKafkaProducer(**{**kafka_options(settings), "linger_ms": 5,
                               "max_batch_size": 262144, "acks": "all", **options})


Record = tuple[str, bytes | None, bytes | None, int | None]  # topic, key, value (None: a tombstone), partition


def customer_partition(settings: Settings, customer_id: str) -> int:
    """The partition of a customer's data (the producers' default partitioner on its id): where the worker that owns
    the customer reads its overrides, tags and erasure."""
    partitions = list(range(settings.partitions))
    return int(DefaultPartitioner()(customer_id.encode(), partitions, partitions))


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
