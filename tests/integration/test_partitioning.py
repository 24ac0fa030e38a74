"""Records on the wrong partition (streams/worker/routing.py): a producer that partitions keys with CRC32, as
librdkafka's clients do by default, ends with the same export as the batch answer (a murmur2 producer's), and an
override sent to the murmur2 partition applies to the same customer, not to a second one."""

from __future__ import annotations

import asyncio
import base64
import csv
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from schemas.outputs import DeadLetter
from streams.kafka.topics import customer_partition
from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import RETAIL, classify_csv, consume_all, read_csv, row_differences

D0 = datetime(2026, 1, 5, 10, tzinfo=UTC)


def crc32_partitioner(key: bytes, all_partitions: list[int], available: list[int]) -> int:
    """librdkafka's ``consistent_random`` (its default, with a key): CRC32 of the key."""
    return all_partitions[zlib.crc32(key) % len(all_partitions)]


def _rows(customers: int) -> list[dict[str, str]]:
    return [{"event_id": f"P{c:03d}-{k}", "customer_id": f"P{c:03d}", "order_id": f"o{c}-{k}",
             "occurred_at": (D0 + timedelta(days=3 * k, hours=c)).isoformat(), "amount": f"{400 + 37 * c}.00"}
            for c in range(customers) for k in range(1 + c % 12)]


def _produce_crc32(settings, topic: str, rows: list[dict[str, str]]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, partitioner=crc32_partitioner)
        await producer.start()
        try:
            for row in rows:
                await producer.send(topic, key=row["customer_id"].encode(), value=orjson.dumps(row))
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(run())


def test_a_crc32_producer_ends_with_the_export_a_murmur2_producer_gets(system, tmp_path):
    settings, names = system.settings, Names(system.settings.topic_prefix)
    rows = _rows(40)
    misplaced = {r["customer_id"] for r in rows
                 if zlib.crc32(r["customer_id"].encode()) % settings.partitions
                 != customer_partition(settings, r["customer_id"])}
    assert len(misplaced) >= 20  # most customers land elsewhere than murmur2 puts them
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker()
    _produce_crc32(settings, names.transactions, rows)
    target = sorted(misplaced)[0]
    assert system.run("override", "set", target, "value", "high_value", "--reason", "key account") == 0
    assert system.run("tick", "--to", "2026-06-30") == 0
    assert system.run("wait", "--timeout", "120") == 0

    tx = tmp_path / "tx.csv"
    with tx.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["event_id", "customer_id", "order_id", "occurred_at", "amount"])
        writer.writeheader()
        writer.writerows(rows)
    expected = classify_csv(system.run, {"transactions": tx}, "2026-06-30", tmp_path / "classify.csv")
    exported = tmp_path / "export.csv"
    assert system.run("export", "--out", str(exported)) == 0
    got = read_csv(exported)
    expected[target]["value"] = "high_value"  # the override, on the one customer it names
    assert row_differences(got, expected) == {}
    view = ReadModel.of(settings).customer(target)
    assert view is not None
    assert view.doc["metrics"]["purchases_12m"] == sum(r["customer_id"] == target for r in rows)
    assert consume_all(settings, names.dead_letters) == []
    log = (Path(settings.data_dir) / "worker.log").read_text()
    assert "belongs on partition" in log
    assert "set partitioner=murmur2_random" in log


def test_with_dead_letter_set_a_misplaced_record_goes_to_dead_letters_with_its_reason(system):
    settings, names = system.settings, Names(system.settings.topic_prefix)
    rows = [r for r in _rows(40) if zlib.crc32(r["customer_id"].encode()) % settings.partitions
            != customer_partition(settings, r["customer_id"])][:5]
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker(wrong_partition="dead-letter")
    _produce_crc32(settings, names.transactions, rows)
    assert system.run("wait", "--timeout", "120") == 0
    letters = [DeadLetter.model_validate_json(v) for _, v in consume_all(settings, names.dead_letters)]
    assert sorted(orjson.loads(base64.b64decode(x.value_b64))["event_id"] for x in letters) == sorted(
        r["event_id"] for r in rows)
    assert {x.reason for x in letters} == {"wrong_partition"}
    assert all("murmur2 of its customer id gives" in x.error_message for x in letters)
