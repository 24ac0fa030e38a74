"""Rulesets coming into force in a partition (``Adoption``, a part of the worker's engine): a ruleset applied or
retired is checked against those in force, then every customer the partition holds is re-evaluated under the
result, ``REEVALUATE_STEP`` at a time between batches, each step's changes handed to the producer and flushed like a
batch's, so a change over a million customers keeps the worker's memory to its flushes' size and its input moving.

Meanwhile the control topic's offset is not committed (the engine leaves it out of the partition's offsets while
``Partition.reevaluating`` is set): the group shows lag, ``segmenter wait`` waits, and a worker stopped half way
reads the rules record again on opening the partition and goes over its customers again, those done skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from segmenter import step
from segmenter.policy import Policy
from segmenter.rules import RuleSet
from segmenter.rules.rulebook import clashes, combine, parts_of
from streams.kafka import faust_compat
from streams.text import clip
from streams.worker import population
from streams.worker.flush import Flusher
from streams.worker.partition import Partition, Reevaluation
from streams.worker.records import Customers, ranked

log = logging.getLogger("segmenter.worker")

# Customers of a partition re-evaluated under a new ruleset per turn (some 4 ms, an estimate). The flush in flight
# encodes its next chunk of Redis rows a step at a time between these turns, while Redis writes the last; with 250 a
# turn its encoding could fall behind Redis: the change waited for flushes 31.3 of 89.6 s over 1,000,000 customers,
# with 64 5.5 of 79.3 s (bench.rules_change --actions after, one pair; docs/throughput.md).
REEVALUATE_STEP = 64
# Flushes' worth of re-evaluated customers a change runs ahead of the flush in flight, so that re-evaluation goes on
# while the flush waits for Redis and the changelog (a kill loses none of it: the control offset is not committed
# until the partition is done, and a restart goes over the customers again).
REEVALUATE_AHEAD = 4


class Adoption:
    """Adopts and retires rulesets in the engine's partitions (``parts``), under the engine's ``lock``; ``send_outputs``
    hands what a step changed to the producer, ``release`` runs the records a partition held for its first
    ruleset."""

    def __init__(self, policy: Policy, parts: dict[int, Partition], table: Any, *, store: Customers,
                 flusher: Flusher, lock: asyncio.Lock, stats: Counter[str],
                 send_outputs: Callable[[], Awaitable[object]], release: Callable[[Partition], None],
                 crash: bool = False) -> None:
        self.policy, self.parts, self.table, self.store = policy, parts, table, store
        self.flusher, self.lock, self.stats, self.crash = flusher, lock, stats, crash
        self.send_outputs, self.release = send_outputs, release
        self._task: asyncio.Task[None] | None = None

    def check(self) -> None:
        """Raise what stopped the re-evaluation, if anything did (the engine's timer calls it: the worker stops, as
        for a failed flush, and a restart takes the rules record again)."""
        task = self._task
        if task is not None and task.done() and not task.cancelled() and (failed := task.exception()) is not None:
            raise failed

    def close(self) -> None:
        """Stop re-evaluating: what is left is done again after a restart (its control offset waits)."""
        if self._task is not None:
            self._task.cancel()

    def adopt(self, part: Partition, ruleset: RuleSet) -> None:
        """A ruleset applied: in force beside the others (replacing another version of its id)."""
        rulebook = {r.id: r for r in parts_of(part.ruleset)}
        current = rulebook.get(ruleset.id)
        if current is not None and current.version == ruleset.version:
            if current.source != ruleset.source:  # `rules apply` refuses this; a record produced by hand may not
                self.stats["rules_refused"] += 1
                log.error("partition %d refused %s v%d: its text differs from the %s v%d in force, and a version is "
                          "never rewritten (apply the change as a new version)", part.number, clip(ruleset.id),
                          ruleset.version, clip(current.id), current.version)
            elif part.reevaluating is None and part.control_next is None:
                # Read again on opening the partition: its re-evaluation may have stopped half way (the control
                # offset is committed only after it), so it goes over the customers again; those done are skipped.
                self._use(part, part.ruleset, f"{ruleset.id} v{ruleset.version} (read again)")
            return
        clash = clashes(ruleset, rulebook.values())
        if clash:  # `rules apply` refuses this too
            self.stats["rules_refused"] += 1
            log.error("partition %d refused %s v%d: %s", part.number, clip(ruleset.id), ruleset.version,
                      "; ".join(clash))
            return
        rulebook[ruleset.id] = ruleset
        self._use(part, combine(rulebook.values()), f"{ruleset.id} v{ruleset.version}")

    def retire(self, part: Partition, ruleset_id: str) -> None:
        """A ruleset taken out of force: its dimensions leave every customer (cause ``rules``)."""
        rulebook = {r.id: r for r in parts_of(part.ruleset)}
        if rulebook.pop(ruleset_id, None) is None:
            log.info("partition %d: %s is not in force here; nothing to retire", part.number, clip(ruleset_id))
            return
        if not rulebook:  # `rules retire` refuses this
            self.stats["rules_refused"] += 1
            log.error("partition %d refused to retire %s, the only ruleset in force", part.number, clip(ruleset_id))
            return
        self._use(part, combine(rulebook.values()), f"{ruleset_id} retired")

    def _use(self, part: Partition, ruleset: RuleSet | None, what: str) -> None:
        """Classify every customer of ``part`` by ``ruleset`` (the rulesets in force, combined) from now on: new
        events at once, the stored customers ``REEVALUATE_STEP`` at a time between batches (``_reevaluate_all``),
        each step flushed like a batch, so a change over a million customers keeps the worker's memory to its
        flushes' size and its input moving."""
        if ruleset is None:
            return
        left = self.begin(part, ruleset, what)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # driven by hand, outside an event loop (tests, benches)
            loop = None
        if loop is None or not left:  # all at once
            self._reevaluate(part, None)
        elif self._task is None or self._task.done():
            self._task = loop.create_task(self._reevaluate_all(), name="segmenter.reevaluate")

    def begin(self, part: Partition, ruleset: RuleSet, what: str) -> list[str]:
        """``part`` classifies by ``ruleset`` from now on, and has every customer it holds to re-evaluate (returned,
        last first); ``_reevaluate`` goes through them."""
        part.ruleset, part.meta_dirty = ruleset, True
        metrics = population.needed(ruleset)
        if part.index is None or part.index.metrics != metrics:  # every customer is put again: it fills again
            part.index = population.PartitionIndex(metrics) if metrics else None
        customers = {key.decode() for key in faust_compat.stored_keys(self.table, part.number)}
        left = sorted(customers | part.records.keys(), reverse=True)  # popped from the end: in id order
        part.reevaluating = Reevaluation(left, what, len(left))
        if left:
            log.info("partition %d adopting %s: %d customers to re-evaluate", part.number, what, len(left))
        return left

    async def reevaluated(self) -> None:
        """Until every partition has re-evaluated its customers under the ruleset it adopted last."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _reevaluate_all(self) -> None:
        """Until every partition has re-evaluated its customers under its ruleset: a step of each under the lock,
        their changes handed to the producer, a flush when one is due, and the flush's backpressure between steps
        (outside the lock, as for batches)."""
        while True:
            await self.flusher.backpressure(REEVALUATE_AHEAD)
            async with self.lock:
                pending = [part for part in self.parts.values() if part.reevaluating is not None]
                if not pending:
                    return
                for part in pending:
                    self._reevaluate(part, REEVALUATE_STEP)
                    await asyncio.sleep(0)  # the flush in flight takes its turns: Redis' replies, its next chunk
                await self.send_outputs()
                if self.flusher.due():
                    await self.flusher.start()
            await asyncio.sleep(0)

    def _reevaluate(self, part: Partition, budget: int | None) -> None:
        """Up to ``budget`` (None: all) of the customers ``part`` has left to re-evaluate; once none is left, the
        control topic's offset may be committed and the records held for a ruleset go on."""
        todo, ruleset = part.reevaluating, part.ruleset
        if todo is None or ruleset is None:
            return
        day = part.day if part.day is not None else self.policy.calendar.day(datetime.now(UTC))
        left, store, ranks, n = todo.left, self.store, self.store.ranks, 0
        while left and (budget is None or n < budget):
            take = min(len(left), REEVALUATE_STEP if budget is None else budget - n)  # a turn's, all at once by steps
            chunk = left[-take:]
            del left[-take:]
            chunk.reverse()  # ascending ids, as the store orders them
            n += take
            store.read_ahead(part, chunk)  # their stored records in one pass of the store, not a point read each
            for customer in chunk:
                record = store.get(part, customer)
                try:
                    new, changes = step.on_rules(record, day, ruleset, self.policy, ranks)
                except Exception:  # a defect met by one customer: it must not stop the others (SEGMENTER_ON_ERROR)
                    if self.crash:
                        raise
                    self.stats["processing_errors"] += 1
                    log.exception("partition %d: customer %s could not be re-evaluated under %s; it keeps its "
                                  "segments until its next event", part.number, clip(customer), ruleset.key)
                    continue
                if new is record and part.index is not None:
                    part.index.update(customer, ranked(part, record, self.policy))
                if new is not record:
                    store.put(part, customer, record, new, changes)
        if left:
            return
        part.reevaluating = None
        if part.control_next is not None:
            tp, offset = part.control_next
            part.offsets[tp] = offset
        self.stats["rules_adopted"] += 1
        log.info("partition %d adopted %s for %d customers in %.1fs (in force: %s)", part.number, todo.what,
                 todo.total, time.monotonic() - todo.started, ruleset.key)
        if part.held:
            self.release(part)
