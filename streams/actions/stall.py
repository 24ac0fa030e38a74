"""A guard against records faust fetched and never handed to the agent.

Seen in the action worker's kill tests (about one run in five when the machine is busy): right
after a worker took its partitions, the agent received offset 0 of a partition, then 6, 7, ...;
offsets 1-5 had been fetched (the consumer's position was past them) and never reached it. (My
reading, not proven: faust makes the partitions active before its seek to the committed offsets
completes, in ``Recovery.on_recovery_completed``, and records fetched in between get lost.) faust
commits only up to the first record not acknowledged, so nothing is lost, but that partition's
committed offset stops there for good: its lag never drains until the next rebalance or restart
re-reads from the committed offset.

The guard watches the group's committed offsets from the broker. A partition this worker owns whose
committed offset has not moved for ``checks`` checks in a row while it is behind, and while the
agent is not held by one record (Redis away, say: that is waiting, not a hole), is re-read from its
committed offset through faust's public ``Consumer.seek``, and the actor lowers its offset watermark to it
(``Actor.reread``: records below the watermark are otherwise skipped as handled, and the hole lies below it). The
action worker's decisions are idempotent per ``change_id``, so the records after the hole are read twice and act
once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from faust.types import TP

from streams.kafka.lag import group_lag
from streams.settings import Settings

log = logging.getLogger("segmenter.stall")


class StallGuard:
    def __init__(self, app: Any, settings: Settings, group: str, topics: tuple[str, ...],
                 held: Callable[[], bool], *, checks: int = 3) -> None:
        self.app, self.settings, self.group, self.topics = app, settings, group, frozenset(topics)
        self.held, self.checks = held, checks
        self._seen: dict[tuple[str, int], tuple[int, int]] = {}  # partition -> (committed, checks unchanged)
        self.reseeks = 0

    def _owned(self) -> set[tuple[str, int]]:
        return {(tp.topic, tp.partition) for tp in self.app.consumer.assignment() if tp.topic in self.topics}

    async def check(self) -> list[tuple[str, int, int]]:
        """One look; returns the partitions re-read now as (topic, partition, from offset)."""
        if self.held() or not self.app.tables.recovery.completed.is_set():
            self._seen.clear()
            return []
        owned = self._owned()
        behind = {(lag.tp.topic, lag.tp.partition): lag.committed
                  for lag in await group_lag(self.settings, only=self.group) if lag.lag > 0}
        seen, self._seen = self._seen, {}
        stuck = []
        for key, committed in behind.items():
            if key not in owned:
                continue
            before, times = seen.get(key, (committed, 0))
            times = times + 1 if before == committed else 1
            if times < self.checks:
                self._seen[key] = (committed, times)
                continue
            stuck.append((*key, committed))
        for topic, partition, committed in stuck:
            if (topic, partition) not in self._owned():  # a rebalance ran while we asked the broker
                continue
            log.warning("%s[%d]: committed offset stuck at %d with records after it for %d checks; re-reading "
                        "from there (faust left a record unprocessed; the records after it act once)",
                        topic, partition, committed, self.checks)
            await self.app.consumer.seek(TP(topic, partition), committed)
            self.reseeks += 1
        return stuck
