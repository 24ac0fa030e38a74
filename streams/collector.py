"""The worker's garbage collection, on its own schedule instead of CPython's.

Every event leaves a handful of new immutable objects per customer (state, buckets tuple, totals,
record) that live until that customer's next event. CPython's automatic collector traverses each of
them, and everything they point at (a very active customer's hundreds of day buckets), in every young
collection, then again in each older generation. Logged by this worker in ``bench.stream``'s latency
phase (40,000 customers): young collections paused it 56-289 ms, the oldest generation 387-479 ms.

The state holds no reference cycles, so it never needs the collector. The worker therefore turns
automatic collection off and, at every flush, freezes what was allocated since the last one
(``gc.freeze``: constant time, no traversal), so nothing is ever traversed twice. The cost is that a
reference cycle that becomes garbage after it was frozen is not reclaimed. Measured in the same
phase with a full collection every 20 s: 2,134 unreachable objects in the first window (start-up),
then none. A full collection (``gc_full_every_s``) reclaims them; it pauses the worker for every
object it holds (587-894 ms with 40,000 customers, so seconds with a million, long enough to miss
the group's session timeout), which is why it is off unless configured.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("segmenter.worker")

_taken_over = False


def take_over() -> None:
    """In a worker process: freeze what start-up built and take collection over from CPython (until
    then, as in tests that build an engine in their own process, a :class:`Collector` does nothing)."""
    global _taken_over  # noqa: PLW0603 - one collector per process, as there is one gc
    gc.collect()
    gc.freeze()
    gc.disable()
    _taken_over = True


class Collector:
    def __init__(self, full_every_s: float) -> None:
        self.full_every_s = full_every_s
        self._last_full = time.monotonic()

    def freeze(self) -> None:
        """Freeze everything allocated since the last call; the full collection when one is due."""
        if not _taken_over:
            return
        if self.full_every_s and time.monotonic() - self._last_full >= self.full_every_s:
            self.full()
        gc.freeze()

    def full(self) -> None:
        started = time.monotonic()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._last_full = time.monotonic()
        log.warning("full garbage collection: %d objects kept, %d unreachable freed, %.0f ms",
                    gc.get_freeze_count(), found, (self._last_full - started) * 1000)
