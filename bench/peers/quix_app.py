"""The peer: the same job written the way a Quix Streams user would write it, in two forms.

Run by ``bench.peers.compare`` in a virtual environment of its own (``make peers`` installs ``quixstreams[redis]``
there from PyPI; segmenter does not depend on it), so this file imports nothing of segmenter's.

Both forms keep, per customer, business-day buckets (UTC days) of purchases and net amount in Quix's RocksDB state
with its changelog topic; stream time per partition (the largest event time seen); the 12- and 6-month windows as
calendar months back from the stream day, clamped to the month's end, as segmenter counts them; the retail value
rules of ``examples/rules/retail-value.yaml``, first match wins; a change record on every change of segment, the
first classification included.

``--job bare`` does only that: no de-duplication of repeated event ids, no read model, no time-driven transitions.

``--job same`` does the rest of the contract as a Quix user would add it:

- **de-duplication**: the event ids of the customer's long window kept in its state, each under a key of its own
  (one lookup per event) and listed by day, dropped as their day leaves the window; an id seen before changes
  nothing;
- **the read model**: every event's customer document (segment and window totals) written to Redis by Quix
  Streams' own ``RedisSink`` (a ``SET`` per record, pipelined at each checkpoint), under ``--redis-prefix``;
- **time-driven transitions**: Quix has no per-key timers, so a scheduled job (``quix_scan.py``) scans the read
  model's keys and sends every customer a ``{"customer_id", "tick": as_of}`` record; this app re-evaluates the
  customer's buckets as of that day and publishes the change (cause ``time``) if its segment moved.

For the equality check, ``sweep`` records (``{"sweep": as_of_iso}``) make either form evaluate a customer's stored
buckets as of that day and publish ``{"customer_id", "segment", "final": true}`` to the changes topic.

    python quix_app.py --broker HOST:PORT --input TOPIC --changes TOPIC --group GROUP --state-dir DIR
                       [--job bare|same --redis-url URL --redis-prefix P]

It commits every 2.8 s (faust's default commit interval; segmenter's worker commits at the end of each of
its own flushes) and writes the wall-clock time of its first record to ``STATE_DIR/started`` (the bench's clock
starts there, as it starts at segmenter's "ready").
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlparse

from quix_rules import LONG_MONTHS, fold, months_back, segment, totals  # beside this file (tests check it)
from quixstreams import Application, State, message_context

stream_day: dict[int, int] = {}  # partition -> the largest event day seen (stream time, by day)
started: list[str] = []  # the file the time of the first record goes to, until it is written


def _started() -> None:
    if started:
        with open(started.pop(), "w") as out:
            out.write(repr(time.time()))


def _sweep(value: dict, buckets: list[list[int]]) -> dict:
    day = datetime.fromisoformat(value["sweep"]).date().toordinal()
    return {"customer_id": value["customer_id"], "segment": segment(*totals(buckets, day)), "final": True}


def _change(value: dict, previous: str, now_segment: str, now: int, window: tuple[int, int, int], *,
            cause: str) -> dict:
    p12, a12, p6 = window
    return {"customer_id": value["customer_id"], "dimension": "value", "from": previous, "to": now_segment,
            "as_of": date.fromordinal(now).isoformat(), "purchases_12m": p12, "amount_12m": a12 / 100,
            "purchases_6m": p6, "event_id": value.get("event_id"), "cause": cause}


def _stream_day(day: int) -> int:
    """The partition's stream day once ``day`` is seen (never back)."""
    partition = message_context().partition
    now = stream_day[partition] = max(stream_day.get(partition, 0), day)
    return now


def _fold(value: dict, state: State, buckets: list[list[int]], day: int, now: int) -> list[list[int]] | None:
    """The customer's buckets with the event folded in, stored; None (nothing stored) when it is too old."""
    folded = fold(buckets, day, value.get("kind", "purchase") != "refund", int(Decimal(value["amount"]) * 100), now)
    if folded is not None:
        state.set("buckets", folded)
    return folded


def step(value: dict, state: State) -> dict | None:
    """The bare job: fold the event in, publish a change of segment."""
    _started()
    buckets: list[list[int]] = state.get("buckets", [])
    if "sweep" in value:  # the equality check: the stored buckets as of the given day
        return _sweep(value, buckets)
    previous = state.get("segment", "unclassified")
    day = datetime.fromisoformat(value["occurred_at"]).date().toordinal()
    now = _stream_day(day)
    folded = _fold(value, state, buckets, day, now)
    if folded is None:
        return None  # older than the longest window: changes nothing
    buckets = folded
    p12, a12, p6 = totals(buckets, now)
    now_segment = segment(p12, a12, p6)
    if now_segment == previous:
        return None
    state.set("segment", now_segment)
    return _change(value, previous, now_segment, now, (p12, a12, p6), cause="event")


def remember(state: State, event_id: str, day: int, long_start: int) -> None:
    """The event id kept in the customer's state under a key of its own (one lookup per event, whatever the
    customer's history), listed under its day so that the ids of days leaving the long window go with them."""
    state.set(f"id:{event_id}", day)
    days: list[int] = state.get("id-days", [])
    if day not in days:
        days.append(day)
        days.sort()
    state.set(f"ids:{day}", [*state.get(f"ids:{day}", []), event_id])
    while days and days[0] < long_start:
        for old in state.get(f"ids:{days[0]}", []):
            state.delete(f"id:{old}")
        state.delete(f"ids:{days.pop(0)}")
    state.set("id-days", days)


def step_same(value: dict, state: State) -> dict | None:
    """The same job as segmenter's: de-duplicated, a read model document per event, ticks from the scan.
    Returns ``{"change": change or None, "doc": read model document or None}``, or None for nothing."""
    _started()
    buckets: list[list[int]] = state.get("buckets", [])
    if "sweep" in value:
        return {"change": _sweep(value, buckets), "doc": None}
    previous = state.get("segment", "unclassified")
    if "tick" in value:  # the scan: a day passed
        now = _stream_day(datetime.fromisoformat(value["tick"]).date().toordinal())
        cause = "time"
    else:
        event_id = value["event_id"]
        if state.exists(f"id:{event_id}"):
            return None  # a repeated event id: already counted
        day = datetime.fromisoformat(value["occurred_at"]).date().toordinal()
        now = _stream_day(day)
        folded = _fold(value, state, buckets, day, now)
        if folded is None:
            return None
        buckets = folded
        remember(state, event_id, day, months_back(now, LONG_MONTHS))
        cause = "event"
    p12, a12, p6 = totals(buckets, now)
    now_segment = segment(p12, a12, p6)
    doc = {"customer_id": value["customer_id"], "segment": now_segment, "as_of": date.fromordinal(now).isoformat(),
           "purchases_12m": p12, "amount_12m": a12 / 100, "purchases_6m": p6}
    if now_segment == previous:
        return {"change": None, "doc": doc if cause == "event" else None}
    state.set("segment", now_segment)
    return {"change": _change(value, previous, now_segment, now, (p12, a12, p6), cause=cause), "doc": doc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("broker", "input", "changes", "group", "state-dir"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--job", choices=("bare", "same"), default="bare")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--redis-prefix", default="quix:c:")
    args = parser.parse_args()
    started.append(f"{args.state_dir}/started")
    app = Application(broker_address=args.broker, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir, commit_interval=2.8, loglevel=logging.WARNING)
    source = app.topic(args.input, value_deserializer="json")
    changes = app.topic(args.changes, value_serializer="json")
    sdf = app.dataframe(source)
    if args.job == "bare":
        sdf.apply(step, stateful=True).filter(lambda record: record is not None).to_topic(changes)
    else:
        from quixstreams.sinks.community.redis import RedisSink  # noqa: PLC0415 - the same job's extra

        url = urlparse(args.redis_url)
        sink = RedisSink(host=url.hostname or "127.0.0.1", port=url.port or 6379, db=int(url.path.strip("/") or 0),
                         password=url.password, key_serializer=lambda _, doc: args.redis_prefix + doc["customer_id"],
                         value_serializer=json.dumps)
        out = sdf.apply(step_same, stateful=True).filter(lambda record: record is not None)
        out.filter(lambda record: record["change"] is not None).apply(lambda r: r["change"]).to_topic(changes)
        out.filter(lambda record: record["doc"] is not None).apply(lambda r: r["doc"]).sink(sink)
    app.run()


if __name__ == "__main__":
    main()
