"""Operator work against the running system: import a CSV, wait until caught up, export the read model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TextIO

import orjson

from schemas.events import Interaction, Profile, Transaction
from segmenter.errors import SegmenterError
from segmenter.metrics import WINDOW_METRICS
from segmenter.rows import Row, RowReader
from streams.cli.csv_input import BadRows, read_rows
from streams.kafka.lag import group_lag, lag_of
from streams.kafka.topics import create_topics, produce_records
from streams.names import Names
from streams.progress import Progress
from streams.readmodel.reader import ReadModel
from streams.settings import Settings
from streams.text import SafeCsvWriter


class OpsError(SegmenterError):
    """A command against the running system failed."""


async def import_file(settings: Settings, kind: str, path: Path, quiet: bool = False, *,
                      by_content: bool = False) -> tuple[int, int, int]:
    """Produce a CSV to its topic, in event-time order. Returns (produced, bad rows, rows repeating an earlier
    row's content); ``by_content``: ids derived from content, the file's ``event_id`` ignored."""
    names = Names(settings.topic_prefix)
    topic = {"transactions": names.transactions, "interactions": names.interactions,
             "profiles": names.profiles}[kind]
    tz = settings.policy().timezone
    reader, bad = RowReader(tz, kind[:2], by_content=by_content), BadRows()
    parsers: dict[str, Callable[[Row], Transaction | Interaction | Profile]] = {
        "transactions": reader.transaction, "interactions": reader.interaction, "profiles": reader.profile}
    parse = parsers[kind]
    no_time = datetime.min.replace(tzinfo=tz)  # profiles have no event time: they go first
    records: list[tuple[datetime, str, bytes]] = []
    for line, row in read_rows(path, kind, bad):
        try:
            model = parse(row)
        except (SegmenterError, ValueError) as exc:
            bad.report(path, line, exc)
            continue
        records.append((getattr(model, "occurred_at", None) or no_time, model.customer_id,
                        model.model_dump_json().encode()))
    records.sort(key=lambda r: r[0])  # stream time follows event time: import history in order
    await create_topics(settings)
    progress = None if quiet else Progress(f"import {path.name}", len(records), unit="events")
    produced = await produce_records(settings, ((topic, c.encode(), v, None) for _, c, v in records), progress)
    return produced, bad.count, reader.repeated


async def wait_caught_up(settings: Settings, timeout_s: float, actions: bool = False,
                         alive: Callable[[], bool] | None = None,
                         groups: Mapping[str, Iterable[str]] | None = None) -> None:
    """Until the worker group (and with ``actions`` the action group; or the ``groups`` given, group -> topics)
    committed everything produced; ``alive``: whether the workers being waited for still run (when they stop,
    waiting ends in an error)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if alive is not None and not alive():
            raise OpsError("a worker exited before the group caught up (see its log)")
        lags = await (group_lag(settings, actions) if groups is None else lag_of(settings, groups))
        behind = sum(lag.lag for lag in lags)
        if behind == 0 and lags:
            return
        if time.monotonic() >= deadline:
            worst = max(lags, key=lambda lag: lag.lag) if lags else None
            where = (f"; most behind: {worst.group} on {worst.tp.topic}[{worst.tp.partition}] by {worst.lag}"
                     if worst else "")
            raise OpsError(f"not caught up after {timeout_s:.0f}s: {behind} records pending{where}")
        await asyncio.sleep(0.5)


def export(settings: Settings, out: TextIO, fmt: str, dimension: str | None, segment: str | None, *,
           tag: str | None = None) -> int:
    """Customers with their segments, tags (``;``-separated in CSV, a list in JSON lines) and metrics; those of
    one segment and/or with one tag."""
    if bool(dimension) != bool(segment):
        raise OpsError("--dimension and --segment go together")
    model = ReadModel.of(settings)
    views = list(model.customers(model.customer_ids(dimension, segment, tag)))
    dims = sorted({d for v in views for d in v.segments})
    writer = SafeCsvWriter(out) if fmt == "csv" else None
    if writer:
        writer.writerow(["customer_id", *dims, "tags", *WINDOW_METRICS])
    for view in views:
        metrics, tags = view.doc["metrics"], view.doc["tags"]
        if writer:
            writer.writerow([view.customer_id, *(view.segments.get(d, "") for d in dims), ";".join(tags),
                             *("" if metrics.get(m) is None else metrics[m] for m in WINDOW_METRICS)])
        else:
            out.write(orjson.dumps({"customer_id": view.customer_id, **view.segments, "tags": tags,
                                    **metrics}).decode() + "\n")
    return len(views)
