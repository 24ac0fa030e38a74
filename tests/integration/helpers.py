"""Produce and consume raw records; compare exports with the offline classification."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import uvicorn

from schemas.outputs import CHANGE_ADAPTER, SegmentChange, TagChange
from streams.api.app import create_api
from streams.kafka.reading import read_topic
from streams.kafka.topics import produce_records
from streams.settings import Settings
from streams.stack.embedded import free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
RETAIL = ROOT / "examples" / "rules" / "retail-value.yaml"

T = TypeVar("T")


def produce(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    asyncio.run(produce_records(settings, [(topic, key, value, None) for key, value in records]))


def consume_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes]]:
    return asyncio.run(read_topic(settings, topic))


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as handle:
        return {row["customer_id"]: row for row in csv.DictReader(handle)}


def classify_csv(run, paths: dict[str, Path], as_of: str, out: Path, rules: Path = RETAIL) -> dict:
    args = ["classify", "--rules", str(rules), "--transactions", str(paths["transactions"]), "--as-of", as_of,
            "--out", str(out), "--quiet"]
    for kind in ("interactions", "profiles"):
        if kind in paths:
            args += [f"--{kind}", str(paths[kind])]
    assert run(*args) == 0
    return read_csv(out)


def changes_by_customer(records: list[tuple[bytes | None, bytes]]) -> dict[str, dict[str, str]]:
    """Replay segment changes (each must satisfy the SegmentChange or TagChange schema): the last 'to' per
    customer and dimension."""
    state: dict[str, dict[str, str]] = {}
    for change in segment_changes(records):
        state.setdefault(change.customer_id, {})[change.dimension] = change.to_segment
    return state


def segment_changes(records: list[tuple[bytes | None, bytes]]) -> list[SegmentChange]:
    """The segment changes among the records of the segment-changes topic (each record must satisfy its schema)."""
    return [c for c in (CHANGE_ADAPTER.validate_json(v) for _, v in records) if isinstance(c, SegmentChange)]


def tag_changes(records: list[tuple[bytes | None, bytes]]) -> list[TagChange]:
    """The tag changes among the records of the segment-changes topic."""
    return [c for c in (CHANGE_ADAPTER.validate_json(v) for _, v in records) if isinstance(c, TagChange)]


def csv_text(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def row_differences(got: dict[str, dict[str, str]], expected: dict[str, dict[str, str]]) -> dict:
    """Per customer, the fields that differ as (stream, offline); customers missing on either side."""
    diffs: dict = {c: {k: (got[c].get(k), v) for k, v in row.items() if got[c].get(k) != v}
                   for c, row in expected.items() if c in got and got[c] != row}
    diffs.update(dict.fromkeys(expected.keys() - got.keys(), "missing from the stream"))
    diffs.update(dict.fromkeys(got.keys() - expected.keys(), "missing offline"))
    return diffs


def wait_until(probe: Callable[[], T], done: Callable[[T], bool], timeout_s: float, what: str) -> T:
    """``probe()`` once ``done`` says so; an assertion error naming ``what`` and the last value after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what} after {timeout_s:.0f}s: {value!r}"[:2000]
        time.sleep(0.2)


def ready_counters(path: Path) -> dict[str, Any]:
    """What a worker's or action worker's readiness file says now (its pid and counters); empty while it is not
    ready."""
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}


@contextmanager
def serving(settings: Settings) -> Iterator[httpx.Client]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_api(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def stream_in(system, tmp_path: Path, rules: Path, transactions: str, *, to: str = "2026-06-30",
              **worker: str) -> None:
    """Apply ``rules``, start a worker, import ``transactions`` (CSV text), wait, move stream time ``to``, wait.

    The first wait keeps the order: the tick is on the control topic, the events on their own, and a worker may
    fetch the tick first and date the events' first classifications on ``to`` (under load, four test processes on two
    cores, test_report once counted them as moves of the span's last week)."""
    assert system.run("rules", "apply", str(rules)) == 0
    system.start_worker(**worker)
    (tmp_path / "tx.csv").write_text(transactions)
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0
    assert system.run("tick", "--to", to) == 0
    assert system.run("wait", "--timeout", "120") == 0


def change_doc(key: str | int, customer: str, before: str | None, after: str, at: datetime) -> bytes:
    """A SegmentChange of retail-value's ``value`` as a worker would publish it, its change id derived from ``key``
    by a stable hash (the same on every run, whatever PYTHONHASHSEED)."""
    change_id = hashlib.blake2b(str(key).encode(), digest_size=12).hexdigest()
    return SegmentChange(
        change_id=change_id, customer_id=customer, dimension="value", **{"from": before, "to": after},
        ruleset_id="retail-value", ruleset_version=1, cause="event", condition="-", metrics={},
        stream_time=at).model_dump_json(by_alias=True).encode()
