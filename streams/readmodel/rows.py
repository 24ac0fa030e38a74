"""A customer's row of the Redis read model as the worker's flush sends it (``ProjectedCustomer``), and the apply
script's arguments for a chunk of them (``script_args``; the script is ``streams.readmodel.scripts.APPLY``).
Compiled with the hot path (``streams.compiled``): a flush builds one per changed customer."""

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
    """The apply script's arguments: the prefix, the story entries kept, a day summary's time to live, one flat JSON
    array of every row's fields (the script's comment lists them), then each customer's record.

    One argument per customer instead of seven: redis-py encodes every argument in Python; one flat array instead
    of an array a row: Lua's decoding builds one table instead of five a row. Numbers travel as text, so Lua stores
    them as they are (its numbers would print 1e+14 past 14 digits); the two counts are numbers."""
    flat: list[Any] = []
    for c in customers:
        flat += (c.customer_id, str(c.epoch), str(c.seq), orjson.dumps(c.segments).decode(), str(c.amount_minor),
                 str(c.partition), orjson.dumps(c.tags).decode() if c.tags else "", str(c.purchases),
                 len(c.history), len(c.moves))
        for change_id, entry in c.history:
            flat += (change_id, entry)
        for change_id, day, dimension, before, after, amount in c.moves:
            flat += (change_id, day, dimension, before, after, str(amount))
    return [prefix, str(keep), str(MOVES_KEPT_S), orjson.dumps(flat), *(c.state for c in customers)]
