"""``segmenter tag add|remove|list``: manual tags (标签) on their own compacted topic, one record per customer and
tag, in the partition of the customer's data so the worker that owns the customer applies them. Tags the rules
give are declared in the ruleset (``tags:``); these are the ones operators add by hand."""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime

from pydantic import ValidationError

from schemas import first_error
from schemas.events import ManualTag
from streams.cli.common import CliError, load_settings, who
from streams.cli.override_commands import send_for_customer
from streams.names import Names
from streams.text import clip


def _doc(args: argparse.Namespace, present: bool) -> ManualTag:
    try:
        return ManualTag(event_id=f"tag-{uuid.uuid4().hex}", customer_id=args.customer, tag=args.tag, present=present,
                         by=who(args.by), reason=args.reason, occurred_at=datetime.now(UTC))
    except ValidationError as exc:
        raise CliError(f"{first_error(exc)} (a tag is letters, digits and . : / _ -, like vip:gold or 行业:制造业)"
                       ) from None


def _send(args: argparse.Namespace, present: bool) -> ManualTag:
    settings = load_settings()
    doc = _doc(args, present)
    send_for_customer(settings, Names(settings.topic_prefix).tags, doc.tag, doc)
    return doc


def cmd_add(args: argparse.Namespace) -> int:
    doc = _send(args, present=True)
    print(f"{doc.customer_id}: tagged {doc.tag} by {doc.by}; the owning worker applies it")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    doc = _send(args, present=False)
    print(f"{doc.customer_id}: the manual tag {doc.tag} is removed (a tag the rules give stays while its "
          "condition holds)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from streams.kafka.reading import latest as newest

    settings = load_settings()
    latest = {key: ManualTag.model_validate_json(value)  # the newest per customer and tag
              for key, value in asyncio.run(newest(settings, Names(settings.topic_prefix).tags)).items()}
    marks = sorted((m for m in latest.values() if m.present and args.tag in (None, m.tag)),
                   key=lambda m: (m.tag, m.customer_id))
    if not marks:
        print("no manual tag set")
        return 0
    print(f"{'customer':<20} {'tag':<28} {'since':<17} {'by':<14} reason")
    for m in marks:
        print(f"{clip(m.customer_id, 20):<20} {clip(m.tag, 28):<28} {m.occurred_at:%Y-%m-%d %H:%M} "
              f"{clip(m.by, 14):<14} {clip(m.reason, 60)}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tags = sub.add_parser("tag", help="add or remove a customer's tag by hand (标签)").add_subparsers(
        dest="tag_cmd", required=True)
    for name, func, text in (("add", cmd_add, "give CUSTOMER the tag TAG"),
                             ("remove", cmd_remove, "take the manual tag TAG from CUSTOMER")):
        p = tags.add_parser(name, help=text)
        p.add_argument("customer")
        p.add_argument("tag")
        p.add_argument("--reason", required=True)
        p.add_argument("--by", help="who (default: $USER)")
        p.set_defaults(func=func)
    p = tags.add_parser("list", help="the manual tags in force")
    p.add_argument("--tag", help="only this tag")
    p.set_defaults(func=cmd_list)
