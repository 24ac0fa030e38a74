"""``segmenter override set|clear|list``: manual overrides (手动调整分类) on their own compacted topic, one record
per customer and dimension, in the partition of the customer's data so the worker that owns the customer
applies them."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime

from schemas.events import ManualTag, Override
from segmenter.errors import SegmenterError
from segmenter.rows import parse_time
from streams.cli.common import CliError, load_settings, who
from streams.names import Names
from streams.settings import Settings
from streams.text import clip


def _active_segments(settings: Settings) -> dict[str, set[str]]:
    from streams.kafka.control import active_segments

    return asyncio.run(active_segments(settings))


def send_for_customer(settings: Settings, topic: str, name: str, doc: Override | ManualTag) -> None:
    """Produce ``doc`` under its customer and ``name`` into the partition of the customer's data (where the owning
    worker reads it)."""
    from streams.kafka.control import send_customer_record
    from streams.kafka.topics import create_topics

    async def send() -> None:
        await create_topics(settings)
        await send_customer_record(settings, topic, name, doc)

    asyncio.run(send())


def _send(settings: Settings, doc: Override) -> None:
    send_for_customer(settings, Names(settings.topic_prefix).overrides, doc.dimension, doc)


def cmd_set(args: argparse.Namespace) -> int:
    settings = load_settings()
    known = _active_segments(settings)
    if args.dimension not in known:
        raise CliError(f"no active ruleset has a dimension {args.dimension!r} (dimensions: "
                       f"{', '.join(sorted(known)) or 'none: apply a ruleset first'})")
    if args.segment not in known[args.dimension]:
        raise CliError(f"dimension {args.dimension} has no segment {args.segment!r} (segments: "
                       f"{', '.join(sorted(known[args.dimension]))})")
    policy = settings.policy()
    until = None
    if args.until:
        try:
            until = parse_time(args.until, policy.timezone, "--until")
        except SegmenterError as exc:
            raise CliError(str(exc)) from None
    doc = Override(event_id=f"override-{uuid.uuid4().hex}", customer_id=args.customer, dimension=args.dimension,
                   segment=args.segment, by=who(args.by), reason=args.reason, occurred_at=datetime.now(UTC),
                   expires_at=until)
    _send(settings, doc)
    print(f"{args.customer}: {args.dimension} pinned to {args.segment}"
          + (f" until {args.until}" if args.until else "") + f" by {doc.by}; the owning worker applies it")
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    settings = load_settings()
    doc = Override(event_id=f"override-{uuid.uuid4().hex}", customer_id=args.customer, dimension=args.dimension,
                   segment=None, by=who(args.by), reason=args.reason, occurred_at=datetime.now(UTC))
    _send(settings, doc)
    print(f"{args.customer}: the override of {args.dimension} is cleared; the rules decide again")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from streams.kafka.reading import latest as newest

    settings = load_settings()
    latest = {key: Override.model_validate_json(value)  # the newest per customer and dimension
              for key, value in asyncio.run(newest(settings, Names(settings.topic_prefix).overrides)).items()}
    known = _active_segments(settings)
    now = datetime.now(UTC)
    pins = sorted((o for o in latest.values() if o.segment is not None and args.dimension in (None, o.dimension)),
                  key=lambda o: (o.dimension, o.customer_id))
    if not pins:
        print("no override set")
        return 0
    print(f"{'customer':<20} {'dimension':<14} {'segment':<16} {'until':<11} {'by':<14} reason")
    for o in pins:
        stale = "" if o.segment in known.get(o.dimension, ()) else "  (stale: not in the active ruleset)"
        if o.expires_at is not None and o.expires_at <= now:
            stale += "  (its day has come by the wall clock)"
        until = o.expires_at.date().isoformat() if o.expires_at else "-"
        print(f"{clip(o.customer_id, 20):<20} {o.dimension:<14} {o.segment:<16} {until:<11} {clip(o.by, 14):<14} "
              f"{clip(o.reason, 60)}{stale}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    overrides = sub.add_parser("override", help="pin a customer's segment by hand (手动调整分类)").add_subparsers(
        dest="override_cmd", required=True)
    p = overrides.add_parser("set", help="pin CUSTOMER's DIMENSION to SEGMENT; it wins over the rules")
    p.add_argument("customer")
    p.add_argument("dimension")
    p.add_argument("segment")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who (default: $USER)")
    p.add_argument("--until", help="the day it expires by itself (start of that day; default: never)")
    p.set_defaults(func=cmd_set)
    p = overrides.add_parser("clear", help="remove the pin: the rules decide again")
    p.add_argument("customer")
    p.add_argument("dimension")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", help="who (default: $USER)")
    p.set_defaults(func=cmd_clear)
    p = overrides.add_parser("list", help="the overrides in force (stale ones marked)")
    p.add_argument("--dimension")
    p.set_defaults(func=cmd_list)
