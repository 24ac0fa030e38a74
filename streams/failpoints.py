"""Crash tests' failpoints: the worker and the action worker die the hard way (or raise) at a chosen point."""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger("segmenter.failpoints")


class Failpoints:
    """Crash tests: die the hard way at a chosen point (the ``failpoint`` setting: ``mid-batch:N``,
    ``before-persist:N`` or ``before-commit:N`` in the segmenter worker, ``after-grant:N`` in the action
    worker: after its Nth acknowledged grant, before the ledger write; ``between-grants:N`` in the action worker:
    the Nth time a grant waits to be sent after an earlier one of its batch was acknowledged; ``process-error:N``
    raises while applying the Nth record instead, as a defect would; several joined by commas)."""

    POINTS = ("mid-batch", "before-persist", "before-commit", "after-grant", "between-grants", "process-error")
    RAISES = ("process-error",)  # raises FailpointError once, at the Nth record, instead of killing

    def __init__(self, spec: str) -> None:
        self.left: dict[str, int] = {}
        for item in filter(None, spec.split(",")):
            name, _, count = item.partition(":")
            if name not in self.POINTS or not count.isdigit():
                raise ValueError(f"failpoint {item!r}: expected one of {', '.join(p + ':N' for p in self.POINTS)}")
            self.left[name] = int(count)

    def __bool__(self) -> bool:
        return bool(self.left)

    def hit(self, point: str) -> None:
        if point in self.left:
            self.left[point] -= 1
            if self.left[point] <= 0:
                if point in self.RAISES:
                    del self.left[point]
                    raise FailpointError(f"failpoint {point} reached")
                log.warning("failpoint %s reached: SIGKILL", point)
                os.kill(os.getpid(), signal.SIGKILL)


class FailpointError(RuntimeError):
    """Raised by a test's failpoint where a defect would raise."""
