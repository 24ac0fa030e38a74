"""How every segmenter process logs: its own lines (the ``segmenter.*`` loggers) from ``SEGMENTER_LOG_LEVEL`` (info:
lifecycle at INFO, trouble at WARNING and ERROR), faust's and the clients' from ``--loglevel`` (warn by default:
faust's INFO is every rebalance step), as text or, with ``SEGMENTER_LOG_FORMAT=json``, one JSON object per line
for a log aggregator: ``{"ts", "level", "logger", "message", "process"}``, and ``"exc"`` with a traceback."""

from __future__ import annotations

import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

import orjson

TEXT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "warning": "WARNING", "info": "INFO",
          "debug": "DEBUG"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a message's newlines stay inside its string)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
                               "level": record.levelname, "logger": record.name, "message": record.getMessage(),
                               "process": record.process}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def logging_config(others: str, own: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document: one stream handler, ``others`` the root's level, ``own`` the
    ``segmenter`` loggers'."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"format": TEXT}
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"default": formatter},
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default", "level": "DEBUG"}},
            "root": {"level": LEVELS[others], "handlers": ["default"]},
            "loggers": {"segmenter": {"level": LEVELS[own]}}}


def configure(others: str, own: str, fmt: str) -> None:
    """Set up logging as ``logging_config`` says (for the processes faust does not start: the API)."""
    logging.config.dictConfig(logging_config(others, own, fmt))
