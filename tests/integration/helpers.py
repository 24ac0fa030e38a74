"""Produce and consume raw records; compare exports with the offline classification."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.kafka_ops import true_ends
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RETAIL = ROOT / "examples" / "rules" / "retail-value.yaml"


def produce(settings: Settings, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    async def go() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            for key, value in records:
                await producer.send(topic, key=key, value=value)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(go())


def consume_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes]]:
    async def go() -> list[tuple[bytes | None, bytes]]:
        ends = await true_ends(settings, [topic])
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        out: list[tuple[int, int, bytes | None, bytes]] = []
        try:
            tps = list(ends)
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, 0)
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, messages in batch.items():
                    out.extend((tp.partition, m.offset, m.key, m.value) for m in messages)
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        return [(k, v) for _, _, k, v in sorted(out, key=lambda r: (r[0], r[1]))]

    return asyncio.run(go())


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
    """Replay segment changes: the last 'to' per customer and dimension."""
    state: dict[str, dict[str, str]] = {}
    for _, value in records:
        doc = orjson.loads(value)
        state.setdefault(doc["customer_id"], {})[doc["dimension"]] = doc["to"]
    return state


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
