"""The worker's garbage collection, on its own schedule instead of CPython's.

Every event leaves a handful of new immutable objects per customer (state, buckets tuple, totals,
record) that live until that customer's next event. CPython's automatic collector traverses each of
them, and everything they point at (a very active customer's hundreds of day buckets), in every young
collection, then again in each older generation. Logged by this worker in ``bench.stream``'s latency
phase (40,000 customers): young collections paused it 56-289 ms, the oldest generation 387-479 ms.

The state holds no reference cycles, so it never needs the collector. The worker therefore turns
automatic collection off and, at every flush, collects only what was allocated since the last one (the
young generation: cyclic garbage made and dropped between two flushes is freed; frozen objects are not
traversed) and freezes what survives (``gc.freeze``: constant time), so nothing old is ever traversed
again. What remains unreclaimed is a reference cycle that becomes garbage after it was frozen. Measured in the same
phase with a full collection every 20 s: 2,134 unreachable objects in the first window (start-up),
then none. A full collection (``gc_full_every_s``) reclaims them; it pauses the worker for every
object it holds (587-894 ms with 40,000 customers, so seconds with a million, long enough to miss
the group's session timeout), which is why it is off unless configured.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time

log = logging.getLogger("segmenter.worker")

_taken_over = False
SLOW_S = 0.1


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
        self.young_ms_max = 0.0

    def freeze(self) -> None:
        """Collect what was allocated since the last call (cyclic garbage among it is freed), freeze the
        rest; the full collection when one is due."""
        if not _taken_over:
            return
        if self.full_every_s and time.monotonic() - self._last_full >= self.full_every_s:
            self.full()
        started = time.monotonic()
        freed = gc.collect(0)  # the young generation only: what is new since the last freeze
        took = time.monotonic() - started
        self.young_ms_max = max(self.young_ms_max, took * 1000)
        if took >= SLOW_S:
            log.warning("garbage collection of the objects new since the last flush took %.0f ms (%d freed)",
                        took * 1000, freed)
        gc.freeze()

    def full(self) -> None:
        started = time.monotonic()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._last_full = time.monotonic()
        log.warning("full garbage collection: %d objects kept, %d unreachable freed, %.0f ms",
                    gc.get_freeze_count(), found, (self._last_full - started) * 1000)


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """At most ``arenas`` glibc malloc arenas in this process (glibc's default is eight per core: RocksDB's
    background threads each took one and kept its freed memory). Like ``MALLOC_ARENA_MAX``, set from inside.
    False where there is no glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False
