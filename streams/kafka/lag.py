"""Consumer-group lag against the true ends: per group and partition, the end, the committed offset, the lag."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.reading import true_ends
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
    """The same for any consumer groups: group -> the topics it consumes."""
    ends = await true_ends(settings, sorted({t for topics in wanted.values() for t in topics}))
    admin = AIOKafkaAdminClient(**kafka_options(settings))
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
