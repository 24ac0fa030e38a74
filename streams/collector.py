"""The worker's garbage collection, on its own schedule instead of CPython's.

Every event leaves a handful of new immutable objects per customer (state, buckets tuple, totals,
record) that live until that customer's next event. CPython's automatic collector traverses each of
them, and everything they point at (a very active customer's hundreds of day buckets), in every young
collection, then again in each older generation. Logged by this worker in ``bench.stream``'s latency
phase (40,000 customers): young collections paused it 56-289 ms, the oldest generation 387-479 ms.

The state holds no reference cycles, so it never needs the collector. The worker therefore turns
automatic collection off and, at every flush, freezes what was allocated since the last one
(``gc.freeze``: constant time), so nothing that survives is ever traversed again. Every
``gc_young_every_s`` (30 s) it first collects what is new since the last freeze (the young generation:
cyclic garbage made and dropped in that interval is freed). Cyclic garbage made in the other intervals is
frozen with the rest and kept until a full collection. Measured in ``bench.stream`` (300,000 events,
a young collection at every flush, each logged): 66 in the worker's 36 s; the first (at start-up) freed
2,023 objects, two more within the next 5 s freed 40, the other 63 none; together they took 2.2 s. In the
1,000,000-event run py-spy counted
13 % of the worker's samples in that collection. A full collection (``gc_full_every_s``) reclaims
whatever was frozen unreachable; it pauses the worker for every object it holds (587-894 ms with
40,000 customers, so seconds with a million, long enough to miss the group's session timeout), which is
why it is off unless configured.

Cyclic garbage frozen uncollected (an exception's traceback holds the frames that hold it: a Redis outage raises one
per retry) is bounded all the same: when the frozen objects have grown by ``gc_full_growth`` (1.0: doubled) since the
last full collection (counted every ``COUNT_EVERY_S``: counting walks them), one runs, as CPython's own collector does
for its oldest generation. While the customers in memory grow from nothing to N, that happens about log2(N / 100,000)
times, each pausing the worker in proportion to what it holds; in a steady state, only when garbage has piled up to
the size of what is live.
The action worker collects the same way, freezing at the end of each batch it takes (``Actor.take``): left to
CPython, its collector ran 45 full collections in ``bench.actions --changes 100000`` (3.4 s, traversing faust's
start-up objects each time, as the long-lived objects kept growing by a quarter), and its CPU per change went from
213-214 to 169-179 µs with this (three pairs alternating, ``docs/throughput.md``).
``tests/streams/test_collector.py`` raises cyclic exceptions in a loop (an outage's pattern) and shows memory
flat with the bound and growing without it. glibc's malloc is tuned too (``malloc_arenas``, ``malloc_trim_every_s``:
settings, each with what it was measured to do).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time
from typing import Any

log = logging.getLogger("segmenter.worker")

_taken_over = False
SLOW_S = 0.1
TRIM_EVERY_S = 5.0  # malloc_trim took 5-14 ms in a test process (100,000 blocks of 0.6-5 KB, half freed): ~0.2 %
FLOOR = 100_000  # frozen objects below which growth never triggers a full collection (start-up's own objects)
# How often the frozen objects are counted against the growth bound: gc.get_freeze_count walks every one of them
# (CPython 3.11: 9 ms for 1.2 million; called at every flush it was 5 % of bench.engine's time).
COUNT_EVERY_S = 10.0


def take_over() -> None:
    """In a worker process: freeze what start-up built and take collection over from CPython (until
    then, as in tests that build an engine in their own process, a :class:`Collector` does nothing)."""
    global _taken_over  # noqa: PLW0603 - one collector per process, as there is one gc
    gc.collect()
    gc.freeze()
    gc.disable()
    _taken_over = True


class Collector:
    def __init__(self, full_every_s: float, young_every_s: float = 0.0, full_growth: float = 0.0,
                 trim_every_s: float = TRIM_EVERY_S, count_every_s: float = COUNT_EVERY_S) -> None:
        self.full_every_s, self.young_every_s, self.full_growth = full_every_s, young_every_s, full_growth
        self.trim_every_s, self.count_every_s = trim_every_s, count_every_s
        self._last_full = self._last_young = self._last_trim = self._last_count = time.monotonic()
        self._base = max(gc.get_freeze_count(), FLOOR)  # frozen objects after the last full collection
        self.fulls = 0
        self.young_ms_max = 0.0
        self.young_freed = 0  # objects the young collections freed, in all

    def freeze(self) -> None:
        """Freeze what was allocated since the last call; when a young collection is due (every
        ``young_every_s``; 0: every call), collect it first (cyclic garbage among it is freed); the full
        collection when one is due."""
        if not _taken_over:
            return
        now = time.monotonic()
        if self.trim_every_s and now - self._last_trim >= self.trim_every_s:
            self._last_trim = now
            trim()
        if self.full_every_s and now - self._last_full >= self.full_every_s:
            self.full()
        elif self.full_growth and now - self._last_count >= self.count_every_s:
            self._last_count = now  # gc.get_freeze_count walks every frozen object: looked at now and then
            if gc.get_freeze_count() > self._base * (1 + self.full_growth):
                self.full()  # what is kept grew past the bound: cyclic garbage frozen with it is freed now
        if now - self._last_young < self.young_every_s:
            gc.freeze()
            return
        self._last_young = started = now
        freed = gc.collect(0)  # the young generation only: what is new since the last freeze
        self.young_freed += freed
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
        self._base = max(gc.get_freeze_count(), FLOOR)
        self.fulls += 1
        log.info("full garbage collection: %d objects kept, %d unreachable freed, %.0f ms",
                    self._base, found, (self._last_full - started) * 1000)


M_ARENA_MAX = -8  # glibc's mallopt parameter
_LIBC: list[Any] = []


def _libc() -> Any:
    """glibc, or None where there is none."""
    if not _LIBC:
        name = ctypes.util.find_library("c")
        try:
            _LIBC.append(ctypes.CDLL(name) if name else None)
        except OSError:
            _LIBC.append(None)
    return _LIBC[0]


def trim() -> bool:
    """Give the memory glibc's malloc holds free back to the system (``malloc_trim``). Freed large blocks
    (fetched batches, a busy customer's buckets before their last change) stay in malloc's heap otherwise:
    after bench.stream's 1,000,000 events, one call took the worker's RSS from 600 to 496 MiB. Called every
    ``TRIM_EVERY_S`` at a flush. False where there is no glibc."""
    libc = _libc()
    if libc is None or not hasattr(libc, "malloc_trim"):
        return False
    libc.malloc_trim(0)
    return True


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """At most ``arenas`` glibc malloc arenas in this process (glibc's default is eight per core: RocksDB's
    background threads each took one and kept its freed memory). Like ``MALLOC_ARENA_MAX``, set from inside.
    False where there is no glibc."""
    libc = _libc()
    if libc is None:
        return False
    try:
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except AttributeError:
        return False
