"""Hostile records among good ones: each goes to dead letters with its reason, the rest is processed, the
worker never stops. Also: a worker starts on a data directory that does not exist yet."""

from __future__ import annotations

import asyncio
import base64
import csv
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from schemas.outputs import DeadLetter
from streams.kafka.topics import customer_partition, produce_records
from streams.names import Names
from tests.integration.helpers import RETAIL, classify_csv, consume_all, read_csv, row_differences, serving

pytestmark = pytest.mark.integration

D0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LONG_ID = "X" * 100_000


def purchase(customer: str, n: int, amount: object, key: str | None = None) -> tuple[bytes, bytes]:
    doc = {"event_id": f"{customer[:20]}-{n}", "customer_id": customer, "order_id": f"o-{n}",
           "occurred_at": (D0 + timedelta(hours=n)).isoformat(), "amount": amount}
    return (key or customer).encode(), orjson.dumps(doc)


def test_a_poison_amount_and_a_failing_record_go_to_dead_letters_while_the_partition_goes_on(system, tmp_path):
    """On the old code the 1e400 transaction passed validation, the flush failed in Redis' HINCRBY and the
    worker crash-looped on the uncommitted record. Every record goes to its customer's partition (murmur2 of its
    key, as producers put it)."""
    settings, names = system.settings, Names(system.settings.topic_prefix)
    good: list[tuple[bytes, bytes]] = []
    hostile: list[tuple[bytes, bytes]] = []
    for i in range(40):
        good += [purchase(f"G{i:03d}", k, f"{100 + i}.50") for k in range(3)]
    hostile += [
        purchase("P001", 1, "1e400"),                 # passed the contract before; the crash loop
        purchase("P002", 1, "1e999999999"),           # would take minutes to expand into an int
        purchase("P003", 1, "5000000000000.00"),      # canonical form (quick path), above max_amount
        purchase("P004", 1, 10**15),                  # an integer amount at the contract's ceiling
        purchase("P005", 1, 1e308),                   # a JSON number
        purchase(LONG_ID, 1, "10.00"),                # a 100 kB customer id
        purchase("P006", 1, "10.00", key="someone-else"),
    ]
    records = good[:60] + hostile + good[60:]
    # A defect met by one record (raised at the 75th record applied): dead-lettered as a processing_error.
    worker = system.start_worker(data_dir=tmp_path / "fresh" / "node" / "worker", failpoint="process-error:75")
    assert system.run("rules", "apply", str(RETAIL)) == 0
    asyncio.run(produce_records(settings, [(names.transactions, k, v, None) for k, v in records]))
    as_of = "2026-03-31"
    assert system.run("tick", "--to", f"{as_of}T23:59:59+00:00") == 0
    assert system.run("wait", "--timeout", "120") == 0
    assert worker.poll() is None, "the worker must not stop"

    letters = [DeadLetter.model_validate_json(v) for _, v in consume_all(settings, names.dead_letters)]
    by_reason = {"bad_input": [], "processing_error": []}
    for letter in letters:
        by_reason[letter.reason].append(letter)
    bad_values = {base64.b64decode(letter.value_b64) for letter in by_reason["bad_input"]}
    assert bad_values == {v for _, v in hostile}
    assert len(by_reason["processing_error"]) == 1
    failed = by_reason["processing_error"][0]
    assert (failed.error_class, failed.error_message) == ("FailpointError", "failpoint process-error reached")
    failed_value = base64.b64decode(failed.value_b64)
    assert failed_value in {v for _, v in good}
    assert failed.partition == customer_partition(settings, orjson.loads(failed_value)["customer_id"])

    # Every other record counts: the export equals the batch answer on the good records but the failed one.
    exported = tmp_path / "export.csv"
    assert system.run("export", "--out", str(exported)) == 0
    kept = [v for _, v in good if v != failed_value]
    tx = tmp_path / "good.csv"
    with tx.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_id", "customer_id", "occurred_at", "amount"])
        for value in kept:
            doc = orjson.loads(value)
            writer.writerow([doc["event_id"], doc["customer_id"], doc["occurred_at"], doc["amount"]])
    expected = classify_csv(system.run, {"transactions": tx}, as_of, tmp_path / "classify.csv")
    assert len(expected) == 40
    assert row_differences(read_csv(exported), expected) == {}

    log = (tmp_path / "fresh" / "node" / "worker" / "worker.log").read_text()
    assert LONG_ID[:1000] not in log, "input strings are cut in log lines"
    assert "X" * 80 + "… (100,000 chars)" in log
    assert "processing the record raised FailpointError" in log


def test_the_worker_and_the_action_worker_start_on_a_data_directory_that_does_not_exist(system, tmp_path):
    fresh = tmp_path / "a" / "b" / "c"
    assert not fresh.parent.exists()
    system.start_worker(data_dir=fresh)
    system.start_worker(data_dir=tmp_path / "x" / "y", role="actions")
    assert (fresh / "worker.ready").exists()
    assert Path(tmp_path / "x" / "y" / "actions.ready").exists()


def _laughs() -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def test_a_hostile_ruleset_on_the_rules_and_control_topics_is_dead_lettered_and_hangs_nothing(system, tmp_path):
    """The 627-byte "billion laughs" and a 5,000-deep nesting, put on the topics by someone with write access to
    them (past `rules apply`, which refuses them): the worker dead-letters each with its reason and goes on, the
    action worker and the API that read the rules topic stay up, and a restart reads them again without hanging."""
    settings, names = system.settings, Names(system.settings.topic_prefix)
    assert system.run("rules", "apply", str(RETAIL)) == 0
    worker = system.start_worker(data_dir=tmp_path / "w")
    actions = system.start_actions(data_dir=tmp_path / "a")
    hostile = [_laughs(), "a: " + "[" * 5000 + "]" * 5000]
    records = [(names.rules, f"evil{i}".encode(), text.encode(), None) for i, text in enumerate(hostile)]
    records += [(names.control, b"rules", orjson.dumps({"type": "rules", "yaml": text, "source": "evil"}), p)
                for text in hostile for p in range(settings.partitions)]
    asyncio.run(produce_records(settings, records))
    asyncio.run(produce_records(settings, [(names.transactions, k, v, None) for k, v in
                                           [purchase(f"H{i}", 1, "10.00") for i in range(8)]]))
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    assert worker.poll() is None
    assert actions.poll() is None
    letters = [DeadLetter.model_validate_json(v) for _, v in consume_all(settings, names.dead_letters)]
    reasons = [letter.error_message for letter in letters if letter.source_topic == names.control]
    assert len(reasons) == 2 * settings.partitions
    assert sum("anchors and aliases" in r for r in reasons) == settings.partitions
    assert sum("nested more than 32 levels" in r for r in reasons) == settings.partitions
    assert system.run("rules", "show") == 0  # reading the rules topic answers; the hostile ones are left out
    with serving(settings) as api:
        assert api.get("/health").status_code == 200
        assert api.get("/customers/H1").status_code == 200  # explained with the ruleset in force
    system.kill_worker(worker, signal.SIGKILL)
    system.start_worker(data_dir=tmp_path / "w")  # reads the control topic again: ready, not hung
