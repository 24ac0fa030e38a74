"""The population's part of the worker (ABC, RFM): the rounds that publish the partitions' summaries and adopt the
merged ranks, and the re-evaluation of the customers a new set of ranks can move (``streams.worker.population``)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from segmenter import codec, step
from segmenter.policy import Policy
from segmenter.ranking import Ranks
from streams.kafka.security import kafka_options
from streams.names import Names
from streams.settings import Settings
from streams.stored import HEADER
from streams.worker.partition import Partition
from streams.worker.population import Values, candidates, decode_docs, merged, summary_doc
from streams.worker.records import Customers

log = logging.getLogger("segmenter.worker")


def ranked_stored(day: int, value: bytes, policy: Policy) -> Values | None:
    """A stored record's ranked values as of ``day`` (``records.ranked``), its window sums read from the bytes."""
    raw, _ = step.loads_shallow(value[HEADER.size :])
    starts = policy.starts(day)
    long, _, _, last, _ = codec.sums(raw, day, starts[0], starts[1])
    return (long[1], long[0], last) if long[0] and last is not None else None


class Ranking:
    """The population's ranks in force (``ranks``), from every partition's summary: ``round`` publishes the summaries
    of this worker's partitions that changed and reads everyone's, ``adopt`` puts new ranks in force and re-evaluates
    the customers they can move."""

    def __init__(self, settings: Settings, names: Names, policy: Policy, parts: dict[int, Partition], *,
                 customers: Customers, stats: Counter[str]) -> None:
        self.settings, self.names, self.policy, self.parts = settings, names, policy, parts
        self.customers, self.stats = customers, stats
        self._docs: dict[bytes, bytes] = {}
        self._reader: AIOKafkaConsumer | None = None

    async def round(self, producer: Callable[[], Awaitable[AIOKafkaProducer]]) -> Ranks | None:
        """Publish the summaries of this worker's partitions that changed, read everyone's; the merged ranks when
        they differ from those in force, else None (merged only when a summary came in: adding them up costs)."""
        indexed = [p for p in self.parts.values() if p.index is not None]
        if not indexed:
            return None
        sender = await producer()
        for part in indexed:
            if part.index is not None and part.index.dirty:
                part.index.dirty = False
                doc = summary_doc(part.number, part.index.summaries(self.settings.population_buckets))
                await sender.send(self.names.population, key=f"p{part.number}".encode(), value=doc, partition=0)
        if self._reader is None:
            reader = AIOKafkaConsumer(**kafka_options(self.settings), enable_auto_commit=False,
                                      auto_offset_reset="earliest")
            await reader.start()
            reader.assign([TopicPartition(self.names.population, 0)])
            self._reader = reader
        fetched = await self._reader.getmany(timeout_ms=200)
        for records in fetched.values():
            self._docs.update(decode_docs(records))
        if not self._docs or (not fetched and self.ranks is not None):
            return None  # nothing published yet, or nothing new since the ranks in force
        ranks = merged(self._docs, self.settings.population_hysteresis)
        return ranks if self.ranks is None or ranks.key != self.ranks.key else None

    @property
    def ranks(self) -> Ranks | None:
        """The ranks in force (kept by the customers, which every record is classified through)."""
        return self.customers.ranks

    def adopt(self, ranks: Ranks) -> None:
        """New ranks in force: reclassify only the customers whose class they can change (cause ``population``)."""
        old, self.customers.ranks = self.ranks, ranks
        looked = 0
        for part in self.parts.values():
            if part.index is None or part.ruleset is None or part.day is None:
                continue
            ruleset, day = part.ruleset, part.day
            for customer in sorted(candidates(part.index, ruleset.boundaries, old, ranks, ranks.hysteresis)):
                looked += 1
                record = self.customers.get(part, customer)
                new, changes = step.on_population(record, day, ruleset, self.policy, ranks)
                if changes or new.due != record.due:
                    self.customers.put(part, customer, record, new, changes)
        self.stats["population_adoptions"] += 1
        self.stats["population_reevaluated"] += looked
        self.stats["population_total"] = ranks.total
        log.info("population ranks %s adopted (%d customers ranked): %d customers re-evaluated", ranks.key,
                 ranks.total, looked)

    async def close(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
