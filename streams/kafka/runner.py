"""Running a faust app in the foreground (the segmenter worker and the action worker)."""

from __future__ import annotations

import sys
from typing import Any

import faust


def run_faust(app: faust.App, loglevel: str, logging_config: dict[str, Any]) -> None:
    """faust's worker in the foreground, logging as ``logging_config`` says (streams/logs.py); its start-up spinner
    only on a terminal (in a log file it leaves cursor escape codes)."""
    from faust.worker import Worker  # noqa: PLC0415 - heavy import, only for worker processes

    worker = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False, logging_config=logging_config)
    if not sys.stdout.isatty():
        worker.spinner = None
    worker.execute_from_commandline()
