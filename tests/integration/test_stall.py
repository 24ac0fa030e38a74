"""The stall guard (streams.actions.stall) against the real broker: it re-reads a partition only when that
partition's committed offset stays put behind its end, the worker owns it and no record holds the agent."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.actions.stall import StallGuard
from streams.kafka.topics import create_topics, produce_records
from streams.names import Names

pytestmark = pytest.mark.integration


class Consumer:
    def __init__(self, owned: set[TopicPartition]) -> None:
        self.owned = owned
        self.seeks: list[tuple[str, int, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    async def seek(self, tp, offset: int) -> None:
        self.seeks.append((tp.topic, tp.partition, offset))


async def commit(settings, group: str, tp: TopicPartition, offset: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.commit({tp: offset})
    finally:
        await consumer.stop()


def test_the_guard_re_reads_only_a_stuck_partition_it_owns(system):
    settings, names = system.settings, Names(system.settings.topic_prefix)
    group, changes = names.actions_app_id, names.segment_changes
    stuck, other = TopicPartition(changes, 1), TopicPartition(changes, 0)

    async def scenario() -> None:
        await create_topics(settings)
        await produce_records(settings, [(changes, b"c", b"{}", p) for p in (0, 1) for _ in range(5)])
        await commit(settings, group, stuck, 2)
        await commit(settings, group, other, 1)
        recovered = asyncio.Event()
        recovered.set()
        consumer = Consumer({stuck})
        held = {"now": True}
        app = SimpleNamespace(consumer=consumer, tables=SimpleNamespace(recovery=SimpleNamespace(completed=recovered)))
        guard = StallGuard(app, settings, group, (changes, names.control), lambda: held["now"])

        for _ in range(4):  # a record holds the agent: waiting, not a hole
            assert await guard.check() == []
        held["now"] = False
        assert await guard.check() == []
        assert await guard.check() == []
        await commit(settings, group, stuck, 3)  # it moved: the count starts again
        assert await guard.check() == []
        assert await guard.check() == []
        assert consumer.seeks == []
        assert await guard.check() == [(changes, 1, 3)]
        # Partition 0 is behind the same way but another worker owns it: never touched.
        assert consumer.seeks == [(changes, 1, 3)]
        assert guard.reseeks == 1
        await commit(settings, group, stuck, 5)  # caught up: nothing to do
        for _ in range(4):
            assert await guard.check() == []
        assert consumer.seeks == [(changes, 1, 3)]

    asyncio.run(scenario())
