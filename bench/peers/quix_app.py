"""The peer: the same job written the way a Quix Streams user would write it.

Run by ``bench.peers.compare`` in a virtual environment of its own (``make bench`` installs
``quixstreams`` there from PyPI; segmenter does not depend on it), so this file imports nothing of
segmenter's. Its job, as far as Quix Streams' API allows:

- per customer, business-day buckets (UTC days) of purchases and net amount, in Quix's RocksDB state
  with its changelog topic;
- stream time per partition (the largest event time seen); the 12- and 6-month windows are calendar
  months back from the stream day, clamped to the month's end, as segmenter counts them;
- the retail value rules of ``examples/rules/retail-value.yaml``, first match wins;
- a change record on every change of segment, the first classification included.

What it does not do: time-driven wake-ups (Quix has no per-key timers; a customer's segment is only
re-evaluated when an event of that customer arrives), de-duplication of repeated event ids, and a
read model. For the equality check, ``sweep`` records (``{"sweep": as_of_iso}``) make it evaluate a
customer's stored buckets as of that day and publish ``{"customer_id", "segment", "final": true}`` to the
changes topic.

    python quix_app.py --broker HOST:PORT --input TOPIC --changes TOPIC --group GROUP --state-dir DIR

It commits every 2.8 s (faust's default commit interval; segmenter's worker commits at the end of each of
its own flushes) and writes the wall-clock time of
its first record to ``STATE_DIR/started`` (the bench's clock starts there, as it starts at segmenter's
"ready").
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import date, datetime
from decimal import Decimal

from quix_rules import fold, segment, totals  # beside this file (tests check it)
from quixstreams import Application, State, message_context

stream_day: dict[int, int] = {}  # partition -> the largest event day seen (stream time, by day)
started: list[str] = []  # the file the time of the first record goes to, until it is written


def step(value: dict, state: State) -> dict | None:
    if started:
        with open(started.pop(), "w") as out:
            out.write(repr(time.time()))
    buckets: list[list[int]] = state.get("buckets", [])
    previous = state.get("segment", "unclassified")
    if "sweep" in value:  # the equality check: the stored buckets as of the given day
        day = datetime.fromisoformat(value["sweep"]).date().toordinal()
        return {"customer_id": value["customer_id"], "segment": segment(*totals(buckets, day)), "final": True}
    partition = message_context().partition
    day = datetime.fromisoformat(value["occurred_at"]).date().toordinal()
    now = stream_day[partition] = max(stream_day.get(partition, 0), day)
    folded = fold(buckets, day, value.get("kind", "purchase") != "refund", int(Decimal(value["amount"]) * 100), now)
    if folded is None:
        return None  # older than the longest window: changes nothing
    buckets = folded
    state.set("buckets", buckets)
    p12, a12, p6 = totals(buckets, now)
    now_segment = segment(p12, a12, p6)
    if now_segment == previous:
        return None
    state.set("segment", now_segment)
    return {"customer_id": value["customer_id"], "dimension": "value", "from": previous, "to": now_segment,
            "as_of": date.fromordinal(now).isoformat(), "purchases_12m": p12, "amount_12m": a12 / 100,
            "purchases_6m": p6, "event_id": value["event_id"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("broker", "input", "changes", "group", "state-dir"):
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()
    started.append(f"{args.state_dir}/started")
    app = Application(broker_address=args.broker, consumer_group=args.group, auto_offset_reset="earliest",
                      state_dir=args.state_dir, commit_interval=2.8, loglevel=logging.WARNING)
    source = app.topic(args.input, value_deserializer="json")
    changes = app.topic(args.changes, value_serializer="json")
    app.dataframe(source).apply(step, stateful=True).filter(lambda record: record is not None).to_topic(changes)
    app.run()


if __name__ == "__main__":
    main()
