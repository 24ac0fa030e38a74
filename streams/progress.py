"""Progress lines on stderr for long work: rewritten in place on a terminal, sparse otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, what: str, total: int | None = None, unit: str = "rows",
                 stream: TextIO | None = None, every_s: float = 1.0) -> None:
        stream = stream or sys.stderr  # looked up per call: sys.stderr may have been replaced since import
        self.what, self.total, self.unit, self.stream = what, total, unit, stream
        self.tty = stream.isatty()
        self.every_s = every_s if self.tty else max(every_s, 5.0)
        self.start = self._last = time.monotonic()
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._print(final=False)

    def close(self) -> None:
        self._print(final=True)

    def _print(self, final: bool) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        line = f"{self.what}: {self.done:,} {self.unit}{share} in {elapsed:.1f}s, {rate:,.0f}/s"
        end = "\n" if final or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line + end)
        self.stream.flush()
