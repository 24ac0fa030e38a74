"""Who used the machine's CPU during a bench phase: the worker, the broker, Redis and the bench itself.

On a machine with few cores the broker, Redis and the load generator share them with the worker, so
a phase's figures mean little without this. Read from ``/proc/<pid>/stat`` (Linux); elsewhere, or
for a process that has gone, the share is left out.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (None when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat(5))


class CpuMeter:
    """``with CpuMeter({"worker": pid, ...}) as meter: ...`` then ``meter.shares``: label -> share of
    one core over the block (1.0 = one core busy all the time)."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.shares: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._start = {label: cpu_seconds(pid) for label, pid in self.pids.items()}
        self._t0 = time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.shares = self.now()

    def now(self) -> dict[str, float]:
        """Each process' share of one core from the block's start until now (inside the block)."""
        elapsed = time.monotonic() - self._t0
        shares = {}
        for label, pid in self.pids.items():
            before, after = self._start[label], cpu_seconds(pid)
            if before is not None and after is not None and elapsed > 0:
                shares[label] = (after - before) / elapsed
        return shares

    def line(self, shares: Mapping[str, float] | None = None) -> str:
        """'worker 98 %, broker 21 %, ... of one core (2 cores)' (empty when nothing was read), of the block or of
        ``shares`` (an earlier ``now``)."""
        shares = self.shares if shares is None else shares
        if not shares:
            return ""
        parts = ", ".join(f"{label} {share * 100:.0f} %" for label, share in shares.items())
        return f"{parts} of one core ({os.cpu_count()} cores)"


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of ``pid`` in MiB (``VmHWM``: its peak so far); 0 when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
