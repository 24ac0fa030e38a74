"""The erasure log: every erasure, by the keyed hash of the customer's id (never the id) and its time.

``segmenter erase`` appends to it in two places: the compacted ``erasures`` topic (for every machine of a cluster)
and ``DATA_DIR/erasures.jsonl`` (readable by its owner only), which outlives the embedded broker's memory-only topics.
``restore`` reads both, and the archive's own log, and re-applies every erasure to what it restores, so that no
backup taken before an erasure brings the customer back.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import orjson

from streams.kafka.reading import latest
from streams.kafka.topics import produce_records
from streams.names import Names
from streams.settings import Settings

LOG_FILE = "erasures.jsonl"


def _log_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / LOG_FILE


async def log_erasure(settings: Settings, key: str, at: datetime) -> None:
    """Record that the customer whose keyed hash is ``key`` was erased at ``at``."""
    value = orjson.dumps({"key": key, "at": int(at.timestamp())})
    await produce_records(settings, [(Names(settings.topic_prefix).erasures, key.encode(), value, None)])
    path = _log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as handle:
        handle.write(value + b"\n")


def merge(into: dict[str, int], entries: list[dict[str, object]]) -> None:
    for entry in entries:
        key, at = entry.get("key"), entry.get("at")
        if isinstance(key, str) and isinstance(at, int):
            into[key] = max(at, into.get(key, at))


async def erasure_log(settings: Settings) -> dict[str, int]:
    """keyed hash -> erasure time (epoch seconds), from the topic and the local file together."""
    found: dict[str, int] = {}
    merge(found, [orjson.loads(v) for v in (await latest(settings, Names(settings.topic_prefix).erasures)).values()])
    path = _log_path(settings)
    if path.is_file():
        merge(found, [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()])
    return found
