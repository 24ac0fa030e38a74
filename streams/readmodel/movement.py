"""What moved: from -> to, customers and summed amount_12m, over the business days of a span of stream time, read from
the day summaries the workers keep in Redis (``P:mv:<day>``, written with each flush: streams/readmodel/writer.py).

A page view or ``segmenter report --since`` costs one hash read per day of the span, however long the segment-changes
topic grows. A customer counts once per flush it moved in (a move and back within one flush is no move; a first
classification is a move from ``(none)``), on its partition's business day at that flush.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from segmenter.policy import Policy

NEW = "(none)"  # the from of a customer's first classification
MAX_SPAN_DAYS = 3660


@dataclass
class Move:
    customers: int = 0
    amount_12m: Decimal = Decimal(0)


@dataclass
class Movement:
    since: datetime | None  # the start of the span (None: no stream time yet)
    until: datetime | None  # the workers' newest stream time
    moves: dict[tuple[str, str, str], Move] = field(default_factory=dict)  # (dimension, from, to)


def days_of(policy: Policy, span: timedelta, until: datetime) -> list[int]:
    """The business days a span ending at ``until`` touches, the last ``MAX_SPAN_DAYS`` at most."""
    first, last = policy.calendar.day(until - span), policy.calendar.day(until)
    return list(range(max(first, last - MAX_SPAN_DAYS + 1), last + 1))


def summed(days: Sequence[Mapping[bytes, bytes]], money_scale: int, since: datetime, until: datetime) -> Movement:
    """The day summaries added up: integers per field first, each distinct field read once."""
    totals: dict[bytes, int] = {}
    for summary in days:
        for name, value in summary.items():
            totals[name] = totals.get(name, 0) + int(value)
    out = Movement(since, until)
    for name, total in totals.items():
        parts = name.decode(errors="replace").split("\x1f")
        if len(parts) not in (3, 4):
            continue
        move = out.moves.setdefault((parts[0], parts[1], parts[2]), Move())
        if len(parts) == 3:
            move.customers += total
        else:
            move.amount_12m += Decimal(total).scaleb(-money_scale)
    return out


SUM = """
-- the day summaries KEYS added up in Redis: one reply of each distinct field once, not every day's fields
local totals, order = {}, {}
for _, key in ipairs(KEYS) do
  local flat = redis.call('HGETALL', key)
  for j = 1, #flat, 2 do
    local field = flat[j]
    if totals[field] == nil then totals[field] = 0; order[#order + 1] = field end
    totals[field] = totals[field] + tonumber(flat[j + 1])
    if totals[field] > 9007199254740991 then return false end  -- past a double's exact integers: read them all
  end
end
local out = {}
for _, field in ipairs(order) do out[#out + 1] = field; out[#out + 1] = string.format('%.0f', totals[field]) end
return out
"""


def pairs_of(flat: Sequence[bytes] | None) -> list[dict[bytes, bytes]] | None:
    """The ``SUM`` script's reply as one summary (None: a sum too large for it, to be read day by day)."""
    if flat is None:
        return None
    return [dict(zip(flat[0::2], flat[1::2], strict=True))]


def day_keys(prefix: str, policy: Policy, span: timedelta, until: datetime) -> list[str]:
    """The summaries' keys of the business days a span ending at ``until`` touches."""
    return [f"{prefix}:mv:{day}" for day in days_of(policy, span, until)]
