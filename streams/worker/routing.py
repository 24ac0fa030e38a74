"""Input records on the wrong partition: found, and put right.

Every customer's data must reach the partition that the Kafka default partitioner (murmur2 of the customer id, as
Java's and aiokafka's producers do) gives it: the worker that owns that partition holds the customer, and overrides,
tags and erasures are sent there. A producer on librdkafka (confluent-kafka, kcat, most non-Java clients) hashes keys
with CRC32 by default: its records would make a second customer of the same id on another partition, silently.

So the worker checks each record of a customer-keyed topic (the key's customer part: overrides and tags are keyed
``customer\\x1fname``) against the murmur2 partition. A record elsewhere is, by ``SEGMENTER_WRONG_PARTITION``:

- ``reroute`` (the default): produced again, same key, value and headers, to the right partition, and acknowledged
  before the offset that skips it is committed (nothing lost; a record rerouted twice after a crash is an event id
  seen before, which changes nothing);
- ``dead-letter``: sent to dead letters with reason ``wrong_partition``.

Either way it counts in ``segmenter_misrouted_total{topic}`` and a log line, at most one a minute per topic, names
the topic and the likely cause.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from aiokafka.partitioner import murmur2

from streams.kafka.fetched import TP, Record
from streams.names import Names
from streams.settings import Settings
from streams.text import clip

log = logging.getLogger("segmenter.worker")
MEMO = 100_000  # customers whose partition is remembered; the memo starts over when full
LOG_EVERY_S = 60.0


class Router:
    """The partition each customer's records belong on, and the records found elsewhere."""

    def __init__(self, settings: Settings, names: Names) -> None:
        self.partitions = settings.partitions
        self.reroute = settings.wrong_partition == "reroute"
        self.topics = frozenset((names.transactions, names.interactions, names.profiles, names.overrides,
                                 names.tags))
        self.pending: dict[tuple[str, int], list[Any]] = {}  # (topic, right partition) -> records to send there
        self.count: Counter[str] = Counter()
        self._memo: dict[bytes, int] = {}
        self._said: dict[str, float] = {}

    def partition_of(self, key: bytes) -> int:
        """murmur2 of the key's customer part, as Kafka's default partitioner computes it."""
        found = self._memo.get(key)
        if found is None:
            customer = key.split(b"\x1f", 1)[0]
            found = (murmur2(customer) & 0x7FFFFFFF) % self.partitions
            if len(self._memo) >= MEMO:
                self._memo.clear()
            self._memo[key] = found
        return found

    def misplaced(self, tp: TP, record: Record) -> int | None:
        """The right partition of ``record`` when it is not ``tp``'s; None when it is where it belongs."""
        if record.key is None:
            return None  # the edge refuses a record without its key, with that reason
        right = self.partition_of(record.key)
        return None if right == tp.partition else right

    def found(self, tp: TP, record: Record, right: int) -> None:
        """Count and log ``record``; queue it for its right partition when rerouting."""
        self.count[tp.topic] += 1
        if self.reroute:
            self.pending.setdefault((tp.topic, right), []).append(record)
        now = time.monotonic()
        if now - self._said.get(tp.topic, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._said[tp.topic] = now
            log.warning("%s[%d] offset=%d key=%s belongs on partition %d (murmur2 of the customer id): its producer "
                        "partitions by another hash (librdkafka's default is CRC32: set partitioner=murmur2_random); "
                        "%s (%d from this topic so far; at most one such line a minute)", tp.topic, tp.partition,
                        record.offset, clip(record.key), right,
                        "sent on to it" if self.reroute else "sent to dead letters", self.count[tp.topic])

    def take_pending(self) -> dict[tuple[str, int], list[Any]]:
        pending, self.pending = self.pending, {}
        return pending
