"""A customer's row of the Redis read model as the worker's flush sends it (``ProjectedCustomer``), and the apply
script's arguments for a chunk of them (``script_args``; the script is ``streams.readmodel.writer``'s). Compiled with
the hot path (``streams.compiled``): a flush builds one per changed customer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

MOVES_KEPT_DAYS = 400
MOVES_KEPT_S = MOVES_KEPT_DAYS * 86_400


class ProjectedCustomer(NamedTuple):
    customer_id: str
    epoch: int
    seq: int
    segments: dict[str, str]
    amount_minor: int
    partition: int
    state: bytes  # the record as the customers table stores it
    tags: tuple[str, ...] = ()
    history: tuple[tuple[str, str], ...] = ()  # changes since the last write: (change id, story entry JSON)
    moves: tuple[tuple[str, int, str, str, str, int], ...] = ()  # (change id, day, dimension, from, to, amount)
    purchases: int = 0  # purchases_12m as of the partition's day, like amount_minor


def script_args(prefix: str, customers: Sequence[ProjectedCustomer], keep: int = 5) -> list[Any]:
    """The apply script's arguments: the prefix, one JSON array of rows, then each customer's record.

    One argument per customer instead of seven: redis-py encodes every argument in Python. Numbers
    travel as text, so Lua stores them as they are (its numbers would print 1e+14 past 14 digits)."""
    rows = [[c.customer_id, str(c.epoch), str(c.seq), orjson.dumps(c.segments).decode(), str(c.amount_minor),
             str(c.partition), orjson.dumps(c.tags).decode() if c.tags else "",
             [[cid, entry] for cid, entry in c.history], keep, [[*m[:5], str(m[5])] for m in c.moves], MOVES_KEPT_S,
             str(c.purchases)]
            for c in customers]
    return [prefix, orjson.dumps(rows), *(c.state for c in customers)]
