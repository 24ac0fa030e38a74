"""Operator commands that talk to the running system: import, wait, tick, rules, export, lag."""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from segmenter.errors import SegmenterError
from segmenter.metrics import WINDOW_METRICS
from segmenter.rows import RowReader
from segmenter.rules import RuleSet
from streams.kafka_ops import create_topics, group_lag, producer, true_ends
from streams.names import Names
from streams.offline import BadRows, read_rows
from streams.progress import Progress
from streams.readmodel import ReadModel
from streams.settings import Settings


class OpsError(SegmenterError):
    """A command against the running system failed."""


async def import_file(settings: Settings, kind: str, path: Path, quiet: bool = False) -> tuple[int, int]:
    """Produce a CSV to its topic, in event-time order. Returns (produced, bad rows)."""
    names = Names(settings.topic_prefix)
    topic = {"transactions": names.transactions, "interactions": names.interactions,
             "profiles": names.profiles}[kind]
    reader, bad = RowReader(settings.policy().timezone, kind[:2]), BadRows()
    records: list[tuple[Any, str, bytes]] = []
    for line, row in read_rows(path, kind):
        try:
            model = {"transactions": reader.transaction, "interactions": reader.interaction,
                     "profiles": reader.profile}[kind](row)
        except (SegmenterError, ValueError) as exc:
            bad.report(path, line, exc)
            continue
        when = getattr(model, "occurred_at", None) or datetime.min.replace(tzinfo=settings.policy().timezone)
        records.append((when, model.customer_id, model.model_dump_json().encode()))
    records.sort(key=lambda r: r[0])  # stream time follows event time: import history in order
    await create_topics(settings)
    progress = None if quiet else Progress(f"import {path.name}", len(records), unit="events")
    prod = producer(settings)
    await prod.start()
    try:
        for i, (_, customer, value) in enumerate(records):
            await prod.send(topic, key=customer.encode(), value=value)
            if progress and i % 2048 == 0:
                progress.update(i)
        await prod.flush()
    finally:
        await prod.stop()
    if progress:
        progress.update(len(records))
        progress.close()
    return len(records), bad.count


async def send_control(settings: Settings, doc: dict[str, Any]) -> None:
    names = Names(settings.topic_prefix)
    await create_topics(settings)
    prod = producer(settings)
    await prod.start()
    try:
        for partition in range(settings.partitions):
            await prod.send(names.control, key=doc["type"].encode(), value=orjson.dumps(doc), partition=partition)
        await prod.flush()
    finally:
        await prod.stop()


async def apply_rules(settings: Settings, ruleset: RuleSet, source: str) -> None:
    names = Names(settings.topic_prefix)
    await create_topics(settings)
    prod = producer(settings)
    await prod.start()
    try:
        await prod.send_and_wait(names.rules, key=ruleset.id.encode(), value=ruleset.source.encode())
    finally:
        await prod.stop()
    await send_control(settings, {"type": "rules", "yaml": ruleset.source, "source": source})


async def latest_rules(settings: Settings) -> dict[str, str]:
    """The newest document of each ruleset id on the rules topic."""
    names = Names(settings.topic_prefix)
    tp = TopicPartition(names.rules, 0)
    ends = await true_ends(settings, [names.rules])
    if not ends.get(tp):
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, str] = {}
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        while (await consumer.position(tp)) < ends[tp]:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    found[m.key.decode()] = m.value.decode()
    finally:
        await consumer.stop()
    return found


async def wait_caught_up(settings: Settings, timeout_s: float, out: TextIO = sys.stderr) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        lags = await group_lag(settings)
        behind = sum(lag.lag for lag in lags)
        if behind == 0 and lags:
            return
        if time.monotonic() >= deadline:
            worst = max(lags, key=lambda lag: lag.lag) if lags else None
            where = f"; most behind: {worst.tp.topic}[{worst.tp.partition}] by {worst.lag}" if worst else ""
            raise OpsError(f"not caught up after {timeout_s:.0f}s: {behind} records pending{where}")
        await asyncio.sleep(0.5)


def export(settings: Settings, out: TextIO, fmt: str, dimension: str | None, segment: str | None) -> int:
    if bool(dimension) != bool(segment):
        raise OpsError("--dimension and --segment go together")
    model = ReadModel(settings.redis_url, Names(settings.topic_prefix).redis)
    views = list(model.customers(model.customer_ids(dimension, segment)))
    dims = sorted({d for v in views for d in v.segments})
    writer = csv.writer(out) if fmt == "csv" else None
    if writer:
        writer.writerow(["customer_id", *dims, *WINDOW_METRICS])
    for view in views:
        metrics = view.doc["metrics"]
        if writer:
            writer.writerow([view.customer_id, *(view.segments.get(d, "") for d in dims),
                             *("" if metrics.get(m) is None else metrics[m] for m in WINDOW_METRICS)])
        else:
            out.write(orjson.dumps({"customer_id": view.customer_id, **view.segments, **metrics}).decode() + "\n")
    return len(views)
