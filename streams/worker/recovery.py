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
there on, and the replay goes on: where it takes the same path, it publishes the same changes again (same ids), and
each change it publishes is the topic's new last word on that customer's dimension or tag. Once the replay has
reached every input's end as it stood at the opening (all that the stopped worker can have processed; or
``REPLAY_WAIT_S`` after the opening, should it not get there: an input closed by a transaction marker), what is left
of the stopped worker's words that differs from the state is put back to the state with one change each (cause
``recovery``; the action worker grants nothing for them). Until then the flushes keep ``changes_end`` where it was,
so that a stop meanwhile finds those changes again. Whatever path the replay takes, the topic's last word on every
customer is then its state, as it is without a stop.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable

import orjson
from aiokafka import TopicPartition

from segmenter.policy import Policy
from segmenter.ranking import Ranks
from segmenter.recovery import changes_back
from streams.kafka.fetched import TP
from streams.kafka.lag import lag_of
from streams.kafka.reading import read_from
from streams.names import Names
from streams.settings import Settings
from streams.worker.partition import Partition, Published, Replaying
from streams.worker.records import Customers

log = logging.getLogger("segmenter.worker")
REPLAY_WAIT_S = 600.0  # a partition whose replay has not reached the inputs' ends by then is put right all the same


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
            elif kind == "occasion":  # an event, not state: nothing to put right
                continue
            else:
                unreadable += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            unreadable += 1
    return out, unreadable


class Reconciler:
    """Puts right what a stopped worker published past the saved state of the partitions it held (see above):
    ``open`` reads it when a partition is opened, ``replayed`` and ``overdue`` say when the replay is far enough,
    ``put_right`` publishes the changes back to the state."""

    def __init__(self, settings: Settings, names: Names, policy: Policy, *, customers: Customers,
                 stats: Counter[str]) -> None:
        self.settings, self.names, self.policy, self.customers, self.stats = settings, names, policy, customers, stats

    async def published_since(self, number: int, start: int) -> list[bytes]:
        """The values of partition ``number`` of the segment-change topic from offset ``start`` to its end."""
        tp = TopicPartition(self.names.segment_changes, number)
        return [value for _, _, _, value in await read_from(self.settings, {tp: start})]

    async def replay_targets(self, number: int) -> dict[TP, int]:
        """Partition ``number`` of each input with records past the group's commit: its end now."""
        lags = await lag_of(self.settings, {self.names.app_id: self.names.inputs})
        return {lag.tp: lag.end for lag in lags if lag.tp.partition == number and lag.end > lag.committed}

    async def open(self, part: Partition, population: Ranks | None) -> None:
        """On opening: read what was published past the saved state; put it right at once when there is nothing to
        replay, else once the replay has reached the inputs' ends (``replayed``)."""
        start = part.changes_end
        if start is None:
            log.info("partition %d: its saved meta predates the record of published changes; the changes published "
                     "after it (if any) are not checked", part.number)
            return
        values = await self.published_since(part.number, start)
        if not values:
            return
        self.stats["published_past_saved"] += len(values)
        published, unreadable = published_of(values)
        part.replaying = Replaying(published, await self.replay_targets(part.number), len(values), unreadable)
        log.warning("partition %d: %d changes were published past its saved state, by a worker that stopped before "
                    "saving them; they are checked against the state once the replay reaches the end of %d input "
                    "partitions", part.number, len(values), len(part.replaying.targets))
        if not part.replaying.targets:
            self.put_right(part, population)

    @staticmethod
    def overdue(parts: Iterable[Partition]) -> list[Partition]:
        """The partitions still replaying ``REPLAY_WAIT_S`` after their opening: to be put right now (an end their
        replay cannot reach as records: a transaction marker closing an input, for one). Should the replay then
        publish changes the stopped worker had published too, each is again the topic's last word on its own."""
        now = time.monotonic()
        return [p for p in parts if p.replaying is not None and now - p.replaying.began >= REPLAY_WAIT_S]

    def replayed(self, part: Partition, tp: TP, position: int, population: Ranks | None) -> None:
        """Called after each run of records while the partition is replaying."""
        if part.replaying is not None and part.replaying.reached(tp, position):
            self.put_right(part, population)

    def put_right(self, part: Partition, population: Ranks | None) -> None:
        """Publish the changes that take the topic's last word on each customer back to its record: where the
        replay went along another path than the stopped worker's (a replay along the same path has published the
        same changes again, with the same ids, and nothing is left to put right)."""
        replaying, part.replaying = part.replaying, None
        if replaying is None:
            return
        corrected = changes = 0
        ruleset, day = part.ruleset, part.day
        customers = self.customers
        if ruleset is not None and day is not None:
            key = f"p{part.number}e{part.epoch}"
            for customer, said in sorted(replaying.published.items()):
                if not (said.segments or said.tags) or not customers.known(part, customer):
                    continue  # nothing left, or not a customer of the state (erased since)
                record = customers.get(part, customer)
                found = changes_back(record, said.segments, said.tags, key=key, now_day=day, ruleset=ruleset,
                                     policy=self.policy, population=population)
                if found:
                    customers.put(part, customer, record, record, found)
                    corrected += 1
                    changes += len(found)
        self.stats["recovery_changes"] += changes
        log.info("partition %d: the replay reached where the stopped worker was; of the %d changes it had published "
                 "past the saved state (%d unreadable), %d customers differed from the state and were set back with "
                 "%d changes (cause recovery), %.1fs after the opening", part.number, replaying.values,
                 replaying.unreadable, corrected, changes, time.monotonic() - replaying.began)
