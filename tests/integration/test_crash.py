"""The fast path under SIGKILL: whatever point the worker dies at, a restart counts every event once."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from streams.cli.demo_data import DemoSpec, generate
from streams.names import Names
from tests.integration.helpers import (
    RETAIL,
    changes_by_customer,
    classify_csv,
    consume_all,
    read_csv,
    row_differences,
)

pytestmark = pytest.mark.integration


def _died_of_sigkill(worker: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.returncode == -signal.SIGKILL, f"the worker should have hit its failpoint ({worker.returncode})"


def test_sigkill_mid_batch_and_before_commit_then_restart_counts_every_event_once(system, tmp_path):
    settings = system.settings
    names = Names(settings.topic_prefix)
    demo = generate(DemoSpec(customers=1500, seed=17), tmp_path / "demo")
    n_transactions = sum(1 for _ in demo["transactions"].open()) - 1
    assert n_transactions > 4000

    # 1. Killed in the middle of a fetched batch: flushes every 300 changed customers have committed
    #    part of the input; the rest of the batch was applied in memory, and some of its changes sent.
    worker = system.start_worker(failpoint=f"mid-batch:{n_transactions // 2}", flush_max_dirty="300",
                                 flush_interval_s="30")
    assert system.run("rules", "apply", str(RETAIL)) == 0
    for kind in ("transactions", "interactions", "profiles"):
        assert system.run("import", kind, str(demo[kind]), "--quiet") == 0
    _died_of_sigkill(worker)

    # 2. Killed at a flush after its changelog is written and before its offsets are committed: the
    #    restarted worker replays events its restored state already holds.
    # (not waited for: with a backlog it may reach its failpoint before it writes its ready file)
    worker = system.start_worker(failpoint="before-commit:2", flush_max_dirty="300", flush_interval_s="30",
                                 wait=False)
    _died_of_sigkill(worker)
    # 3. Killed after projecting into Redis and before the changelog: Redis is ahead of the state.
    worker = system.start_worker(failpoint="before-persist:2", flush_max_dirty="300", flush_interval_s="30",
                                 wait=False)
    _died_of_sigkill(worker)

    # 4. A clean restart on the same data dir finishes the job.
    system.start_worker()
    as_of = "2026-07-31"
    assert system.run("tick", "--to", f"{as_of}T23:59:59+00:00") == 0
    assert system.run("wait", "--timeout", "180") == 0
    exported = tmp_path / "export.csv"
    assert system.run("export", "--out", str(exported)) == 0
    expected = classify_csv(system.run, demo, as_of, tmp_path / "classify.csv")
    assert len(expected) == 1500
    # the metrics include purchases_12m and amount_12m: an event counted twice would show here
    assert row_differences(read_csv(exported), expected) == {}

    # replaying every segment-change ends where the export is; replays re-send changes with the same id
    records = consume_all(settings, names.segment_changes)
    final = changes_by_customer(records)
    assert {c: d["value"] for c, d in final.items()} == {c: row["value"] for c, row in expected.items()}
