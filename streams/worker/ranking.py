"""The population half of ``Engine`` (ABC, RFM): the customers' ranked values into their partition's index, the
rounds that publish the partitions' summaries and adopt the merged ranks, and the re-evaluation of the customers a
new set of ranks can move (``streams.worker.population``)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from segmenter import codec, step
from segmenter.ranking import Ranks
from segmenter.state import totals_at
from streams.kafka.security import kafka_options
from streams.names import Names
from streams.stored import HEADER
from streams.worker.partition import Partition
from streams.worker.population import Values, candidates, decode_docs, merged, summary_doc
from streams.worker.records import Records

log = logging.getLogger("segmenter.worker")


class Ranking(Records):
    """These attributes and methods are the engine's."""

    names: Names
    parts: dict[int, Partition]
    population: Ranks | None
    _population_docs: dict[bytes, bytes]
    _population_reader: AIOKafkaConsumer | None
    _lock: asyncio.Lock

    async def producer(self) -> AIOKafkaProducer:
        raise NotImplementedError  # the engine's

    async def _send_outputs(self) -> None:
        raise NotImplementedError  # the engine's

    def _ranked(self, part: Partition, record: step.CustomerRecord) -> Values | None:
        """The customer's ranked values as of the partition's day; None outside the population."""
        last = record.state.last_purchase
        if part.day is None or last is None:
            return None
        long = totals_at(record.state, part.day, self.policy).long
        return (long[1], long[0], last) if long[0] else None

    def _ranked_stored(self, day: int, value: bytes) -> Values | None:
        """The same from a stored record, its window sums read from the bytes."""
        raw, _ = step.loads_shallow(value[HEADER.size :])
        starts = self.policy.starts(day)
        long, _, _, last, _ = codec.sums(raw, day, starts[0], starts[1])
        return (long[1], long[0], last) if long[0] and last is not None else None

    async def population_round(self) -> None:
        """Publish the summaries of this worker's partitions that changed, read everyone's, and adopt the merged
        ranks when they differ from those in force (merged only when a summary came in: adding them up costs)."""
        indexed = [p for p in self.parts.values() if p.index is not None]
        if not indexed:
            return
        producer = await self.producer()
        for part in indexed:
            if part.index is not None and part.index.dirty:
                part.index.dirty = False
                doc = summary_doc(part.number, part.index.summaries(self.settings.population_buckets))
                await producer.send(self.names.population, key=f"p{part.number}".encode(), value=doc, partition=0)
        if self._population_reader is None:
            reader = AIOKafkaConsumer(**kafka_options(self.settings), enable_auto_commit=False,
                                      auto_offset_reset="earliest")
            await reader.start()
            reader.assign([TopicPartition(self.names.population, 0)])
            self._population_reader = reader
        fetched = await self._population_reader.getmany(timeout_ms=200)
        for records in fetched.values():
            self._population_docs.update(decode_docs(records))
        if not self._population_docs or (not fetched and self.population is not None):
            return  # nothing published yet, or nothing new since the ranks in force
        ranks = merged(self._population_docs, self.settings.population_hysteresis)
        if self.population is None or ranks.key != self.population.key:
            async with self._lock:
                self._adopt_population(ranks)
                await self._send_outputs()

    def _adopt_population(self, ranks: Ranks) -> None:
        """New ranks in force: reclassify only the customers whose class they can change (cause ``population``)."""
        old, self.population = self.population, ranks
        looked = 0
        for part in self.parts.values():
            if part.index is None or part.ruleset is None or part.day is None:
                continue
            ruleset, day = part.ruleset, part.day
            for customer in sorted(candidates(part.index, ruleset.boundaries, old, ranks, ranks.hysteresis)):
                looked += 1
                record = self._get(part, customer)
                new, changes = step.on_population(record, day, ruleset, self.policy, ranks)
                if changes or new.due != record.due:
                    self._put(part, customer, record, new, changes)
        self.stats["population_adoptions"] += 1
        self.stats["population_reevaluated"] += looked
        self.stats["population_total"] = ranks.total
        log.info("population ranks %s adopted (%d customers ranked): %d customers re-evaluated", ranks.key,
                 ranks.total, looked)


