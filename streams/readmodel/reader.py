"""Reading the Redis read model (export, customer, report)."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import redis

from segmenter import step
from segmenter.metrics import WINDOW_METRICS, compute, display
from segmenter.policy import Policy
from streams.names import Names
from streams.readmodel.movement import SUM, Movement, day_keys, pairs_of, summed
from streams.readmodel.writer import STATS_KEPT_S, STATS_WORKERS
from streams.settings import Settings
from streams.stored import unpack

_PAGE = """
local page = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local out = {}
for _, id in ipairs(page[2]) do
  local row = redis.call('HMGET', ARGV[3] .. ':c:' .. id, 'partition', 'state')
  if row[2] then
    out[#out + 1] = struct.pack('>I2', #id) .. id .. struct.pack('>I2I4', tonumber(row[1]), #row[2]) .. row[2]
  end
end
return {page[1], table.concat(out)}
"""
_ID, _ROW = struct.Struct(">H"), struct.Struct(">HI")  # a packed row: id length, id, partition, record length


@dataclass(frozen=True)
class CustomerView:
    customer_id: str
    segments: dict[str, str]
    doc: dict[str, Any]
    record: step.CustomerRecord | None = None  # the stored record the view was computed from
    day: int | None = None  # its partition's business day (None before a clock was published)


def view_of(customer_id: str, segments: bytes | None, partition: bytes, state: bytes, *,
            clock: dict[int, tuple[str, int]], policy: Policy) -> CustomerView:
    """A customer's hash fields as a view: its record, and its metrics as of its partition's clock."""
    record = unpack(state)
    now = clock.get(int(partition))
    doc: dict[str, Any] = {"ruleset": record.ruleset, "profile": record.profile, "partition": int(partition),
                           "tags": list(record.tags),
                           "due": date.fromordinal(record.due).isoformat() if record.due else None,
                           "metrics": {}, "as_of_day": None}
    if now is not None:
        values = compute(record.state, now[1], policy, record.profile)
        doc["metrics"] = {m: display(m, values[m], policy) for m in WINDOW_METRICS}
        doc["as_of_day"] = date.fromordinal(now[1]).isoformat()
    return CustomerView(customer_id, orjson.loads(segments or b"{}"), doc, record, None if now is None else int(now[1]))


def parse_clock(raw: Mapping[bytes, bytes]) -> dict[int, tuple[str, int]]:
    """The ``P:clock`` hash: partition -> (stream time, business day)."""
    return {int(p): tuple(orjson.loads(v)) for p, v in raw.items()}


def newest_stream_time(clock: Mapping[int, tuple[str, int]]) -> datetime | None:
    """The newest stream time any partition published (None before any)."""
    times = [datetime.fromisoformat(t) for t, _ in clock.values() if t]
    return max(times) if times else None


def segment_rows(dimension: str, amounts: Mapping[bytes, bytes], counts: Sequence[Any],
                 money_scale: int) -> list[tuple[str, str, int, Decimal]]:
    """A dimension's ``P:amt`` hash (segment -> summed amount_12m in minor units) with its segments' member counts
    (``counts``, in the segments' sorted order) as report rows; segments with no customer are left out."""
    return [(dimension, name.decode(), int(count), Decimal(int(amounts[name])).scaleb(-money_scale))
            for name, count in zip(sorted(amounts), counts, strict=True) if int(count)]


def decode_changes(entries: list[bytes]) -> list[dict[str, Any]]:
    """The story list's entries (``P:h:<customer>``), newest first."""
    out = []
    for entry in entries:
        change_id, _, doc = entry.decode().partition(" ")
        out.append({"change_id": change_id, **orjson.loads(doc)})
    return out


class ReadModel:
    """Customers as the worker last projected them, with metrics computed as of their partition's clock."""

    def __init__(self, url: str, prefix: str, policy: Policy, **options: Any) -> None:
        self.client = redis.Redis.from_url(url, **options)
        self.prefix, self.policy = prefix, policy
        self._page = self.client.register_script(_PAGE)
        self._sum = self.client.register_script(SUM)

    @classmethod
    def of(cls, settings: Settings) -> ReadModel:
        return cls(settings.redis_url, Names(settings.topic_prefix).redis, settings.policy(),
                   **settings.redis_options())

    def ping(self) -> None:
        self.client.ping()

    def clock(self) -> dict[int, tuple[str, int]]:
        """Each partition's stream time and business day, as the worker last published them."""
        return parse_clock(self.client.hgetall(f"{self.prefix}:clock"))

    def _view(self, customer_id: str, segments: bytes | None, partition: bytes, state: bytes,
              clock: dict[int, tuple[str, int]]) -> CustomerView:
        return view_of(customer_id, segments, partition, state, clock=clock, policy=self.policy)

    def stream_time(self) -> datetime | None:
        """The newest stream time any partition published (None before any)."""
        return newest_stream_time(self.clock())

    def movement(self, span: timedelta, money_scale: int) -> Movement:
        """What moved within ``span`` before the newest stream time (streams/readmodel/movement.py)."""
        until = self.stream_time()
        if until is None:
            return Movement(None, None)
        keys = day_keys(self.prefix, self.policy, span, until)
        days = pairs_of(self._sum(keys=keys))
        if days is None:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            days = pipe.execute()
        return summed(days, money_scale, until - span, until)

    def count(self) -> int:
        """Customers in the read model."""
        return int(self.client.scard(f"{self.prefix}:customers"))

    def partition_counts(self, partitions: int) -> dict[int, int]:
        """Customers per input partition, from the per-partition member sets."""
        pipe = self.client.pipeline(transaction=False)
        for number in range(partitions):
            pipe.scard(f"{self.prefix}:p:{number}")
        return {number: int(n) for number, n in enumerate(pipe.execute())}

    def records(self, chunk: int = 2000, partition: int | None = None) -> Iterator[list[tuple[str, int, bytes]]]:
        """Every customer's stored record (or those of one input ``partition``) as (customer id, partition, record
        bytes), in chunks: one call per chunk (a script reads an SSCAN page's hashes and packs them into one
        reply), so a million customers never sit in memory at once, and cost a few hundred round trips."""
        key = f"{self.prefix}:customers" if partition is None else f"{self.prefix}:p:{partition}"
        cursor = b"0"
        while True:
            cursor, blob = self._page(keys=[key], args=[cursor, chunk, self.prefix])
            out, pos, end = [], 0, len(blob)
            while pos < end:
                (n,) = _ID.unpack_from(blob, pos)
                customer = blob[pos + 2 : pos + 2 + n].decode()
                number, size = _ROW.unpack_from(blob, pos + 2 + n)
                pos += 2 + n + _ROW.size
                out.append((customer, number, blob[pos : pos + size]))
                pos += size
            if out:
                yield out
            if cursor == b"0":
                return

    def customer(self, customer_id: str) -> CustomerView | None:
        segments, partition, state = self.client.hmget(f"{self.prefix}:c:{customer_id}",
                                                       "segments", "partition", "state")
        if state is None:
            return None
        return self._view(customer_id, segments, partition, state, self.clock())

    def customer_ids(self, dimension: str | None = None, segment: str | None = None, tag: str | None = None
                     ) -> list[str]:
        """Every customer, or those in ``dimension``'s ``segment`` and/or with ``tag``."""
        keys = [f"{self.prefix}:m:{dimension}:{segment}"] if dimension and segment else []
        keys += [f"{self.prefix}:t:{tag}"] if tag else []
        if len(keys) > 1:
            return sorted(m.decode() for m in self.client.sinter(keys))
        return sorted(m.decode() for m in self.client.smembers(keys[0] if keys else f"{self.prefix}:customers"))

    def recent_changes(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's last segment and tag changes, newest first (``story_changes`` of them at most)."""
        return decode_changes(self.client.lrange(f"{self.prefix}:h:{customer_id}", 0, -1))

    def tag_counts(self) -> dict[str, int]:
        """Each tag some customer has, with how many have it."""
        keys = sorted(self.client.scan_iter(f"{self.prefix}:t:*", count=1000))
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.scard(key)
        counts = zip((k.decode().split(":t:", 1)[1] for k in keys), pipe.execute(), strict=True)
        return {tag: int(n) for tag, n in counts if n}

    def customers(self, ids: list[str]) -> Iterator[CustomerView]:
        clock = self.clock()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            pipe = self.client.pipeline(transaction=False)
            for cid in chunk:
                pipe.hmget(f"{self.prefix}:c:{cid}", "segments", "partition", "state")
            for cid, (segments, partition, state) in zip(chunk, pipe.execute(), strict=True):
                if state is not None:
                    yield self._view(cid, segments, partition, state, clock)

    def counters(self) -> dict[str, dict[str, int]]:
        """Each live worker's counters, as it last published them: the workers from their index (a scan of the keys
        went through every customer's: at 300,000 customers it kept the reader busy for seconds), each one's counters
        unless they expired."""
        workers = sorted(w.decode() for w in self.client.zrangebyscore(
            f"{self.prefix}:{STATS_WORKERS}", time.time() - STATS_KEPT_S, "+inf"))
        pipe = self.client.pipeline(transaction=False)
        for worker in workers:
            pipe.hgetall(f"{self.prefix}:stats:{worker}")
        return {worker: {k.decode(): int(v) for k, v in found.items()}
                for worker, found in zip(workers, pipe.execute(), strict=True) if found}

    def quarantined(self) -> dict[str, dict[str, Any]]:
        """Customers whose rows Redis refused (see ``streams.readmodel.writer``): id -> why, partition, seq, when."""
        return {k.decode(): orjson.loads(v) for k, v in self.client.hgetall(f"{self.prefix}:quarantine").items()}

    def action_counts(self) -> dict[tuple[str, str], dict[str, int]]:
        """(dimension.segment, action) -> outcome (issued, cooldown, replay, dwell) -> count."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for field, value in self.client.hgetall(f"{self.prefix}:action-counts").items():
            segment, action, outcome = field.decode().split("|")
            out.setdefault((segment, action), {})[outcome] = int(value)
        return out

    def report(self, money_scale: int) -> list[tuple[str, str, int, Decimal]]:
        """``(dimension, segment, customers, amount_12m)`` of every segment with customers (``pareto`` input)."""
        rows = []
        for key in sorted(self.client.scan_iter(f"{self.prefix}:amt:*")):
            dimension = key.decode().split(":amt:", 1)[1]
            amounts = self.client.hgetall(key)
            pipe = self.client.pipeline(transaction=False)
            for name in sorted(amounts):
                pipe.scard(f"{self.prefix}:m:{dimension}:{name.decode()}")
            rows += segment_rows(dimension, amounts, pipe.execute(), money_scale)
        return rows

    def stories(self, customers: Sequence[str]) -> list[list[bytes]]:
        """Each customer's story list (``P:h:<customer>``: "<change id> <JSON>", newest first), one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for customer in customers:
            pipe.lrange(f"{self.prefix}:h:{customer}", 0, -1)
        return pipe.execute()

    def kpi_sums(self, dimensions: Iterable[str]) -> dict[str, dict[bytes, bytes]]:
        """Each dimension's ``P:kpi`` hash (``pareto.with_kpis``)."""
        dimensions = sorted(set(dimensions))
        pipe = self.client.pipeline(transaction=False)
        for dimension in dimensions:
            pipe.hgetall(f"{self.prefix}:kpi:{dimension}")
        return dict(zip(dimensions, pipe.execute(), strict=True))
