"""What moved: the segment changes on the topic whose stream time is within a span before now, as a from -> to
matrix of customers and summed amount_12m (``segmenter report --since``, ``GET /movement``).

The whole topic is read (changes carry their stream time, not an index by it): its cost grows with the topic, and
what its retention dropped is not counted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import ValidationError

from schemas.outputs import CHANGE_ADAPTER, SegmentChange
from streams.kafka.reading import read_topic
from streams.names import Names
from streams.settings import Settings

NEW = "(none)"  # the from of a customer's first classification


@dataclass
class Move:
    customers: int = 0
    amount_12m: Decimal = Decimal(0)


@dataclass
class Movement:
    since: datetime | None  # the first stream time counted (None: no change on the topic)
    until: datetime | None  # the newest stream time on the topic
    moves: dict[tuple[str, str, str], Move] = field(default_factory=dict)  # (dimension, from, to)


async def movement(settings: Settings, span: timedelta, now: datetime | None = None) -> Movement:
    """The changes of the ``span`` before ``now`` (the workers' newest stream time; default: the newest change's),
    first classifications included."""
    changes = []
    for _, value in await read_topic(settings, Names(settings.topic_prefix).segment_changes):
        try:
            change = CHANGE_ADAPTER.validate_json(value)
        except ValidationError:
            continue  # not a change this version reads: left out
        if isinstance(change, SegmentChange) and change.from_segment != change.to_segment:
            changes.append(change)
    if not changes:
        return Movement(None, None)
    until = now or max(c.stream_time for c in changes)
    out = Movement(until - span, until)
    for c in changes:
        if c.stream_time >= until - span:
            move = out.moves.setdefault((c.dimension, c.from_segment or NEW, c.to_segment), Move())
            move.customers += 1
            move.amount_12m += c.amount_12m or 0
    return out
