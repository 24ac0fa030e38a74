"""Lag is never under-counted: the ends are read after the committed offsets, so a flush that produces its last
changes and commits between the two reads cannot make the workers and the action workers look caught up while
the action workers have not read those changes (``segmenter wait --actions`` once returned early so)."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.kafka import lag
from streams.names import Names
from streams.settings import Settings


async def test_changes_produced_while_the_offsets_are_read_count_as_lag(monkeypatch: Any) -> None:
    settings = Settings()
    names = Names(settings.topic_prefix)
    inputs, changes = TopicPartition(names.transactions, 0), TopicPartition(names.segment_changes, 0)
    ends = {inputs: 100, changes: 40}
    committed = {names.app_id: {inputs: 90}, names.actions_app_id: {changes: 40}}

    async def true_ends(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
        return {tp: end for tp, end in ends.items() if tp.topic in topics}

    class Admin:
        def __init__(self, **options: Any) -> None:
            pass

        async def list_consumer_group_offsets(self, group: str, partitions: list[TopicPartition]
                                              ) -> dict[TopicPartition, OffsetAndMetadata]:
            if group == names.app_id:  # the workers' last flush: its 3 changes produced, then its offsets committed
                ends[changes] = 43
                committed[group][inputs] = 100
            return {tp: OffsetAndMetadata(committed[group][tp], "") for tp in partitions if tp in committed[group]}

        async def close(self) -> None:
            pass

    async def started(client: Any) -> Any:
        return client

    async def partitions_of(settings: Settings, topics: list[str]) -> list[TopicPartition]:
        return sorted(tp for tp in ends if tp.topic in topics)

    monkeypatch.setattr(lag, "true_ends", true_ends)
    monkeypatch.setattr(lag, "partitions_of", partitions_of)
    monkeypatch.setattr(lag, "AIOKafkaAdminClient", Admin)
    monkeypatch.setattr(lag, "started", started)
    found = {(x.group, x.tp): x.lag for x in await lag.lag_of(settings, {names.app_id: (names.transactions,),
                                                                       names.actions_app_id: (names.segment_changes,)})}
    assert found == {(names.app_id, inputs): 0, (names.actions_app_id, changes): 3}
