"""The fast path under SIGKILL: whatever point the worker dies at, a restart counts every event once, and the
segment-change topic's last word on every customer is its state."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter

import orjson
import pytest

from streams.cli.demo_data import DemoSpec, generate
from streams.kafka.reading import read_from, true_ends
from streams.kafka.topics import produce_records
from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import (
    RETAIL,
    changes_by_customer,
    classify_csv,
    consume_all,
    read_csv,
    row_differences,
    wait_until,
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


def test_a_change_published_past_the_saved_state_is_put_back_to_the_state_on_restart(system, tmp_path):
    """A worker that stops between publishing a change and saving the state it came from leaves the topic saying
    something its saved state does not hold, and the replay may take another path (records of different topics
    interleave as they are fetched). Here that change is written by hand after a clean stop; the next worker
    finds it past the saved state and publishes the change back (cause ``recovery``)."""
    settings = system.settings
    names = Names(settings.topic_prefix)
    demo = generate(DemoSpec(customers=60, seed=5), tmp_path / "demo")
    worker = system.start_worker()
    assert system.run("rules", "apply", str(RETAIL)) == 0
    assert system.run("import", "transactions", str(demo["transactions"]), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0
    system.kill_worker(worker, signal.SIGTERM)  # a clean stop: everything published is saved

    async def changes_by_partition() -> list[tuple[int, dict]]:
        ends = await true_ends(settings, [names.segment_changes])
        found = await read_from(settings, dict.fromkeys(ends, 0), ends)
        return [(tp.partition, orjson.loads(value)) for tp, _, _, value in found]

    published = asyncio.run(changes_by_partition())
    last = {doc["customer_id"]: (number, doc) for number, doc in published if doc["type"] == "segment_change"}
    customer, (number, doc) = next((c, nd) for c, nd in sorted(last.items()) if nd[1]["to"] == "low_value")
    unsaved = {**doc, "change_id": "0" * 24, "from": "low_value", "to": "churn_risk", "cause": "time",
               "condition": "purchases_6m == 0 and purchases_12m > 0", "event_id": None}
    asyncio.run(produce_records(settings, [(names.segment_changes, customer.encode(), orjson.dumps(unsaved),
                                            number)]))

    system.start_worker()
    # a partition is opened, and put right, at its first record after the restart: a tick before the stream time
    assert system.run("tick", "--to", "2026-01-01T00:00:00+00:00") == 0
    def counted() -> dict[str, int]:  # the workers' counters, summed (published every 5 s)
        return sum((Counter(c) for c in ReadModel.of(settings).counters().values()), Counter())

    found = wait_until(counted, lambda c: c["published_past_saved"] >= 1 and c["recovery_changes"] >= 1, 60,
                       "the change published past the saved state found and put right")
    assert (found["published_past_saved"], found["recovery_changes"]) == (1, 1)
    assert system.run("wait", "--timeout", "120") == 0
    records = consume_all(settings, names.segment_changes)
    final = [orjson.loads(v) for _, v in records if orjson.loads(v)["customer_id"] == customer]
    assert (final[-1]["from"], final[-1]["to"], final[-1]["cause"]) == ("churn_risk", "low_value", "recovery")
    exported = tmp_path / "export.csv"
    assert system.run("export", "--out", str(exported)) == 0
    assert {c: d["value"] for c, d in changes_by_customer(records).items()} == {
        c: row["value"] for c, row in read_csv(exported).items()}

