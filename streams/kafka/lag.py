"""Consumer-group lag against the true ends: per group and partition, the end, the committed offset, the lag."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.reading import partitions_of, true_ends
from streams.kafka.security import kafka_options
from streams.kafka.topics import started
from streams.names import Names
from streams.settings import Settings


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
    return await lag_of(settings, {g: topics for g, topics in groups(settings, actions).items()
                                   if only is None or g == only})


async def lag_of(settings: Settings, wanted: Mapping[str, Iterable[str]]) -> list[Lag]:
    """The same for any consumer groups: group -> the topics it consumes.

    The ends are read again after every group's committed offsets, which are read in the order given (upstream
    first: the workers, then the action workers), so a lag is never under-counted. Zero for every group then means
    each had committed everything produced when its offsets were read: the workers produce their segment-changes
    before they commit, so what they had committed was already in the ends read after. (With the ends read first, a
    flush that produced its last changes and committed in between made both groups look caught up while the action
    workers had not read those changes.)"""
    topics = sorted({t for topics in wanted.values() for t in topics})
    partitions = sorted(await partitions_of(settings, topics))
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await started(admin)
    read: list[tuple[str, TopicPartition, int]] = []
    try:
        for group, group_topics in wanted.items():
            tps = [tp for tp in partitions if tp.topic in group_topics]
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            for tp in tps:
                meta = committed.get(tp)
                read.append((group, tp, meta.offset if meta is not None and meta.offset >= 0 else 0))
    finally:
        await admin.close()
    ends = await true_ends(settings, topics)
    return [Lag(group, tp, ends.get(tp, offset), offset) for group, tp, offset in read]
