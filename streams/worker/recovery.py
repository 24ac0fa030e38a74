"""Changes published past a partition's saved state, put right when the partition is opened.

A worker publishes a customer's segment-changes as it processes the records, and saves the customer's state at its
next flush. A worker that stops in between (killed, or its machine lost) has published changes its saved state does
not hold. The next owner restores the saved state and processes the same records again, but not necessarily along
the same path: Kafka orders nothing across topics, so the records of the transactions, interactions and control
topics may interleave differently, and stream time with them (a customer whose purchase came after stream time had
passed its churn day goes churn-risk on the way, or not). The changes the replay publishes are then not those
published before, and the topic's last word on a customer could differ from its state for good.

Every flush records, in the partition's meta (``changes_end``), the offset of this partition of the segment-change
topic below which every change belongs to the saved state. Opening the partition reads what was published from
there on and, for each customer whose last published segment or tag differs from its saved record, publishes the
change back to it (cause ``recovery``). The replay's own changes follow; so, whatever path it takes, the topic's
last word on every customer is its state, as it is without a stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from aiokafka import TopicPartition

from segmenter import step
from segmenter.ranking import Ranks
from streams.kafka.reading import read_from
from streams.names import Names
from streams.worker.erasure import Erasing
from streams.worker.partition import Partition

log = logging.getLogger("segmenter.worker")


@dataclass
class Published:
    """The last word the topic holds on one customer: segment per dimension, and tags added (True) or removed."""

    segments: dict[str, str] = field(default_factory=dict)
    tags: dict[str, bool] = field(default_factory=dict)


def published_of(values: Iterable[bytes]) -> tuple[dict[str, Published], int]:
    """The last word per customer in these segment-change topic values (in topic order), and how many values were
    not readable as changes (skipped). An erasure clears what came before it."""
    out: dict[str, Published] = {}
    unreadable = 0
    for value in values:
        try:
            doc = orjson.loads(value)
            kind, customer = doc["type"], doc["customer_id"]
            if kind == "segment_change":
                out.setdefault(customer, Published()).segments[doc["dimension"]] = doc["to"]
            elif kind == "tag_change":
                out.setdefault(customer, Published()).tags[doc["tag"]] = bool(doc["added"])
            elif kind == "erasure":
                out.pop(customer, None)
            else:
                unreadable += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            unreadable += 1
    return out, unreadable


class Recovering(Erasing):
    """These attributes are the engine's."""

    names: Names
    population: Ranks | None

    async def _published_since(self, number: int, start: int) -> list[bytes]:
        """The values of partition ``number`` of the segment-change topic from offset ``start`` to its end."""
        tp = TopicPartition(self.names.segment_changes, number)
        return [value for _, _, _, value in await read_from(self.settings, {tp: start})]

    async def _reconcile(self, part: Partition) -> None:
        """Publish the changes that take the topic's last word on each customer back to its saved record."""
        start = part.changes_end
        if start is None:
            log.info("partition %d: its saved meta predates the record of published changes; the changes published "
                     "after it (if any) are not checked", part.number)
            return
        began = time.monotonic()
        values = await self._published_since(part.number, start)
        if not values:
            return
        published, unreadable = published_of(values)
        corrected = changes = 0
        ruleset, day = part.ruleset, part.day
        if ruleset is not None and day is not None:
            key = f"p{part.number}e{part.epoch}"
            for customer in sorted(published):
                if not self._known(part, customer):
                    continue  # not in the saved state: the replay classifies it from the start
                record = self._get(part, customer)
                said = published[customer]
                found = step.on_recovery(record, said.segments, said.tags, key=key, now_day=day, ruleset=ruleset,
                                         policy=self.policy, population=self.population)
                if found:
                    self._put(part, customer, record, record, found)
                    corrected += 1
                    changes += len(found)
        self.stats["recovery_changes"] += changes
        log.warning("partition %d: %d changes were published past its saved state (by a worker that stopped before "
                    "saving them; %d unreadable); %d customers set back to their saved segments with %d changes "
                    "(cause recovery) in %.2fs", part.number, len(values), unreadable, corrected, changes,
                    time.monotonic() - began)
