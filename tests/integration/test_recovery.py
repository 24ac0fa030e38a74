"""A worker resumes from its data dir, and a worker with an empty data dir recovers from the changelog."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from streams.cli.demo_data import DemoSpec, generate
from streams.kafka.lag import group_lag
from streams.stack.embedded import free_port, start_redis, stop
from tests.integration.helpers import (
    RETAIL,
    classify_csv,
    read_csv,
    ready_counters,
    row_differences,
    wait_until,
)

pytestmark = pytest.mark.integration


def _split(path: Path, first: Path, second: Path, at: str) -> None:
    """History before ``at`` and from ``at`` on: the stream sees it in time order, as a replay would."""
    lines = path.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    column = header.split(",").index("occurred_at")
    first.write_text(header + "".join(r for r in rows if r.split(",")[column] < at))
    second.write_text(header + "".join(r for r in rows if r.split(",")[column] >= at))


def _export_equals_classify(system, paths, as_of: str, tmp_path: Path, rules: Path = RETAIL) -> None:
    assert system.run("tick", "--to", f"{as_of}T23:59:59+00:00") == 0
    assert system.run("wait", "--timeout", "180") == 0
    out = tmp_path / f"export-{as_of}.csv"
    assert system.run("export", "--out", str(out)) == 0
    expected = classify_csv(system.run, paths, as_of, tmp_path / f"classify-{as_of}.csv", rules)
    assert row_differences(read_csv(out), expected) == {}, f"as of {as_of}"


def test_restart_on_same_data_dir_resumes_and_empty_data_dir_recovers(system, tmp_path):
    demo = generate(DemoSpec(customers=300, seed=9), tmp_path / "demo")
    first, second = tmp_path / "tx-1.csv", tmp_path / "tx-2.csv"
    _split(demo["transactions"], first, second, "2026-03-01")

    worker = system.start_worker()
    assert system.run("rules", "apply", str(RETAIL)) == 0
    assert system.run("import", "transactions", str(first), "--quiet") == 0
    _export_equals_classify(system, {"transactions": first}, "2026-02-28", tmp_path)

    system.kill_worker(worker, signal.SIGTERM)  # graceful stop; same data dir next
    worker = system.start_worker()
    assert system.run("import", "transactions", str(second), "--quiet") == 0
    _export_equals_classify(system, {"transactions": demo["transactions"]}, "2026-07-31", tmp_path)

    system.kill_worker(worker, signal.SIGKILL)  # crash; the next worker starts from nothing on disk
    system.start_worker(data_dir=tmp_path / "fresh-worker")
    # A new ruleset version makes the recovered worker reclassify every customer from its own state.
    v2 = tmp_path / "retail-v2.yaml"
    v2.write_text(RETAIL.read_text().replace("version: 1", "version: 2").replace(">= 10000", ">= 8000"))
    assert system.run("rules", "apply", str(v2)) == 0
    _export_equals_classify(system, {"transactions": demo["transactions"]}, "2026-08-31", tmp_path, rules=v2)


def test_the_worker_outlasts_its_redis_going_away(system, tmp_path, monkeypatch):
    """With Redis away the worker holds its commits back (the lag shows it) and stays up, its timers
    included; with Redis back it catches up and the read model equals the offline classification."""
    port = free_port()
    monkeypatch.setenv("SEGMENTER_REDIS_URL", f"redis://127.0.0.1:{port}/0")  # for export
    redis_a = start_redis(port, tmp_path / "redis-a")
    worker = system.start_worker(redis_url=f"redis://127.0.0.1:{port}/0", data_dir=tmp_path / "own")
    stop(redis_a.pid)
    demo = generate(DemoSpec(customers=200, seed=4), tmp_path / "demo")
    assert system.run("rules", "apply", str(RETAIL)) == 0
    assert system.run("import", "transactions", str(demo["transactions"]), "--quiet") == 0
    # The worker has fetched the records and is held by Redis: its flush retries and its counters timer fails.
    wait_until(lambda: ready_counters(tmp_path / "own" / "worker.ready").get("redis_retries", 0), bool, 90,
               "the worker retrying Redis")
    assert worker.poll() is None, "a worker must not die while Redis is away"
    assert sum(lag.lag for lag in asyncio.run(group_lag(system.settings))) > 0, "commits wait for Redis"
    redis_b = start_redis(port, tmp_path / "redis-b")  # empty: everything is written after the outage
    try:
        _export_equals_classify(system, {"transactions": demo["transactions"]}, "2026-07-31", tmp_path)
        assert ready_counters(tmp_path / "own" / "worker.ready")["redis_retries"] > 0
    finally:
        stop(redis_b.pid)


def test_a_redis_that_comes_back_empty_is_projected_again_from_the_store(system, tmp_path, monkeypatch):
    """Redis loses everything (restarted without its data): the worker notices at its next flush and projects
    every stored customer again, so the read model is whole with no new event for most customers."""
    port = free_port()
    monkeypatch.setenv("SEGMENTER_REDIS_URL", f"redis://127.0.0.1:{port}/0")  # for export
    redis_a = start_redis(port, tmp_path / "redis-a")
    worker = system.start_worker(redis_url=f"redis://127.0.0.1:{port}/0", data_dir=tmp_path / "own")
    demo = generate(DemoSpec(customers=300, seed=5), tmp_path / "demo")
    assert system.run("rules", "apply", str(RETAIL)) == 0
    assert system.run("import", "transactions", str(demo["transactions"]), "--quiet") == 0
    _export_equals_classify(system, {"transactions": demo["transactions"]}, "2026-07-31", tmp_path)
    stop(redis_a.pid)
    redis_b = start_redis(port, tmp_path / "redis-b")  # empty
    try:
        _export_equals_classify(system, {"transactions": demo["transactions"]}, "2026-07-31", tmp_path)
        assert worker.poll() is None
        log = (tmp_path / "own" / "worker.log").read_text()
        assert "redis held none of it (restarted empty?)" in log
    finally:
        stop(redis_b.pid)
