"""The documents the worker publishes on the segment-changes topic (``SegmentChange``, ``TagChange``, ``Occasion``,
``CustomerErased``; tests/streams validate them against the schemas), a change as the customer's story lists it
(the Redis list ``P:h:<customer>``: short JSON, no metrics), and what a flush writes of each changed customer: the
stored record (changelog and store) and its Redis row, from one encoding of its windows (``encode_changed``).

Both are kept a while (a change document until its batch is handed to the producer, a story entry until its flush
reaches Redis), so each is returned in an object of its own size: orjson 3.12 and later return their working buffer,
4 KiB or more, whatever the document's length (ijl/orjson c2a6e8f; home-assistant/core#181245). In bench.stream's
worker that was 100 MiB of its peak RSS (docs/peers.md, "Documents of their own size")."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date, datetime

import orjson

from segmenter import step
from segmenter.encoder import StateEncoder
from segmenter.occasions import Occasion
from segmenter.policy import Policy
from segmenter.rules import RuleSet
from segmenter.rules.rulebook import owner
from segmenter.state import new_tuple, totals_at
from streams.readmodel.rows import ProjectedCustomer
from streams.stored import pack
from streams.worker.partition import History, Move


def change_json(customer: str, record: step.CustomerRecord, change: step.AnyChange, ruleset: RuleSet,
                stream_time: str, *, change_id: str, amount_12m: str | None = None) -> bytes:
    """A SegmentChange or TagChange document (``change_id``: ``change.change_id(customer, record.ruleset)``); money as
    its exact text, as the schema says."""
    if isinstance(change, Occasion):
        ruleset = next((p for p in ruleset.parts if p.id == change.ruleset_id), ruleset)
        return _sized(orjson.dumps({
            "type": "occasion", "change_id": change_id, "customer_id": customer, "occasion": change.kind,
            "date": date.fromordinal(change.day).isoformat(), "lead_days": change.lead_days,
            "ruleset_id": ruleset.id, "ruleset_version": ruleset.version, "stream_time": stream_time,
            **({"profile": published(record.profile)} if record.profile else {}),
        }))
    if isinstance(change, step.TagChange):
        ruleset = owner(ruleset, tag=change.tag, profile=record.profile)  # the ruleset in force that gives it
        return _sized(orjson.dumps({
            "type": "tag_change", "change_id": change_id, "customer_id": customer, "tag": change.tag,
            "added": change.added, "ruleset_id": ruleset.id, "ruleset_version": ruleset.version,
            "cause": change.cause, "condition": change.condition, "metrics": dict(change.metrics),
            "stream_time": stream_time, "event_id": change.cause_key if change.cause in ("event", "manual") else None,
        }, default=str))
    explanation = change.explanation
    ruleset = owner(ruleset, dimension=change.dimension)  # the ruleset in force that holds the dimension
    return _sized(orjson.dumps({
        "type": "segment_change", "change_id": change_id, "customer_id": customer,
        "dimension": change.dimension, "from": change.before, "to": change.after,
        "ruleset_id": ruleset.id, "ruleset_version": ruleset.version, "cause": change.cause,
        "condition": explanation.condition, "metrics": dict(explanation.metrics),
        "explanation": list(explanation.rejected), "stream_time": stream_time,
        "event_id": change.cause_key if change.cause == "event" else None,
        **({"profile": published(record.profile)} if record.profile else {}),  # absent: none known (schema: {})
        "amount_12m": amount_12m,
    }, default=str))


def published(profile: dict[str, str | None]) -> dict[str, str | None]:
    """The profile as change documents carry it (for routing alerts): the ``profile.*`` attributes, never the
    birth date."""
    return {k: v for k, v in profile.items() if k.startswith("profile.")}


def erasure_json(customer: str, segments: dict[str, str], *, reason: str, by: str, at: datetime,
                 stream_time: str) -> bytes:
    """A CustomerErased document; its id is the same for every copy of one erasure."""
    change_id = hashlib.blake2b(f"erase\x1f{customer}\x1f{at.isoformat()}".encode(), digest_size=12).hexdigest()
    return _sized(orjson.dumps({"type": "erasure", "change_id": change_id, "customer_id": customer, "cause": "erasure",
                                "segments": segments, "reason": reason, "by": by, "erased_at": at.isoformat(),
                                "stream_time": stream_time}))


def story_entry(change: step.AnyChange, stream_time: str) -> str:
    """``{"at", "cause", "why"}`` and ``"dimension", "from", "to"`` for a segment change, ``"tag", "added"`` for a
    tag change (text: the Redis script's rows are JSON text)."""
    if isinstance(change, Occasion):
        when = date.fromordinal(change.day).isoformat()
        ahead = f", {change.lead_days} day(s) ahead" if change.lead_days else ""
        return orjson.dumps({"at": stream_time, "occasion": change.kind, "date": when, "cause": "time",
                             "why": f"{change.kind.replace('_', ' ')} on {when}{ahead}"}).decode()
    if isinstance(change, step.TagChange):
        return orjson.dumps({"at": stream_time, "tag": change.tag, "added": change.added, "cause": change.cause,
                             "why": change.condition}).decode()
    return orjson.dumps({"at": stream_time, "dimension": change.dimension, "from": change.before, "to": change.after,
                         "cause": change.cause, "why": change.explanation.condition}).decode()


def _sized(doc: bytes) -> bytes:
    """``doc`` copied into a bytes object of its own length (text in between: the cheapest copy, 0.2 µs)."""
    return doc.decode().encode()


Changed = tuple[int, int, int | None, str, step.CustomerRecord, History]  # partition, epoch, day, customer, record


def encode_changed(changed: Sequence[Changed], encoder: StateEncoder, *, policy: Policy, keep: int,
                   customers: dict[int, list[tuple[bytes, bytes | None]]], projected: list[ProjectedCustomer]) -> None:
    """The flush's changed customers encoded: each stored value appended to its partition's ``customers``, each
    Redis row to ``projected``."""
    for number, epoch, day, customer, record, history in changed:
        value = pack(number, record, encoder.dumps(customer, record.state))
        customers.setdefault(number, []).append((customer.encode(), value))
        projected.append(projected_row(customer, record, value, number=number, epoch=epoch, day=day, policy=policy,
                                       history=history, keep=keep))


def projected_row(customer: str, record: step.CustomerRecord, value: bytes, *, number: int, epoch: int,
                  day: int | None, policy: Policy, history: Sequence[tuple[str, str, Move | None]] = (),
                  keep: int = 0) -> ProjectedCustomer:
    """A customer's Redis row: its stored ``value``, segments, amount_12m and purchases_12m as of its partition's
    ``day``, its last ``keep`` changes since the last flush (for its story's list) and its segment moves (for the
    day summary)."""
    long = totals_at(record.state, day, policy).long if day is not None else (0, 0)
    story = tuple((i, entry) for i, entry, _ in history[-keep:]) if keep else ()
    moves = tuple((i, *move) for i, _, move in history if move is not None)
    return new_tuple(ProjectedCustomer, (customer, epoch, record.seq, dict(record.segments), long[1], number, value,
                                         record.tags, story, moves, long[0]))  # every field
