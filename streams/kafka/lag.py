"""Consumer-group lag against the true ends: per group and partition, the end, the committed offset, the lag."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka.reading import EndReader
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
    """The same for any consumer groups: group -> the topics it consumes (``LagReader.read``, once)."""
    async with LagReader(settings) as reader:
        return await reader.read(wanted)


class LagReader:
    """Reads consumer groups' lag again and again with the same clients (an admin client and an ``EndReader``),
    started once: ``wait_caught_up`` polls every half second, and starting four clients a poll took some 60 % of a
    core of a 2-core machine beside the workers it waited for (``docs/throughput.md``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ends = EndReader(settings)
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> LagReader:
        await self._ends.__aenter__()
        try:
            self._admin = await started(AIOKafkaAdminClient(**kafka_options(self.settings)))
        except BaseException:
            await self._ends.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._admin is not None:
                await self._admin.close()
        finally:
            await self._ends.__aexit__()

    async def read(self, wanted: Mapping[str, Iterable[str]]) -> list[Lag]:
        """Per group of ``wanted`` (group -> the topics it consumes) and topic-partition: the true end, the committed
        offset and the lag.

        The ends are read again after every group's committed offsets, which are read in the order given (upstream
        first: the workers, then the action workers), so a lag is never under-counted. Zero for every group then
        means each had committed everything produced when its offsets were read: the workers produce their
        segment-changes before they commit, so what they had committed was already in the ends read after. (With the
        ends read first, a flush that produced its last changes and committed in between made both groups look caught
        up while the action workers had not read those changes.)"""
        assert self._admin is not None, "used outside its async with"
        topics = sorted({t for topics in wanted.values() for t in topics})
        partitions = sorted(await self._ends.partitions(topics))
        read: list[tuple[str, TopicPartition, int]] = []
        for group, group_topics in wanted.items():
            tps = [tp for tp in partitions if tp.topic in group_topics]
            committed = await self._admin.list_consumer_group_offsets(group, partitions=tps)
            for tp in tps:
                meta = committed.get(tp)
                read.append((group, tp, meta.offset if meta is not None and meta.offset >= 0 else 0))
        ends = await self._ends.ends(topics)
        return [Lag(group, tp, ends.get(tp, offset), offset) for group, tp, offset in read]
