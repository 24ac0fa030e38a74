"""Reading the Redis read model (export, customer, report)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import redis


@dataclass(frozen=True)
class CustomerView:
    customer_id: str
    segments: dict[str, str]
    doc: dict[str, Any]


class ReadModel:
    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def ping(self) -> None:
        self.client.ping()

    def clock(self) -> dict[int, tuple[str, int]]:
        """Each partition's stream time and business day, as the worker last published them."""
        return {int(p): tuple(orjson.loads(v)) for p, v in self.client.hgetall(f"{self.prefix}:clock").items()}

    @staticmethod
    def aged(doc: dict[str, Any], clock: dict[int, tuple[str, int]]) -> dict[str, Any]:
        """The document with ``days_since_*`` as of its partition's current stream day."""
        now = clock.get(doc.get("partition", -1))
        if now is None or not doc.get("metrics"):
            return doc
        metrics = dict(doc["metrics"])
        for name, anchor in (("days_since_last_purchase", doc.get("last_purchase")),
                             ("days_since_first_purchase", doc.get("first_purchase"))):
            metrics[name] = None if anchor is None else now[1] - anchor
        return {**doc, "metrics": metrics, "as_of_day": date.fromordinal(now[1]).isoformat()}

    def customer(self, customer_id: str) -> CustomerView | None:
        raw = self.client.hgetall(f"{self.prefix}:c:{customer_id}")
        if not raw:
            return None
        doc = self.aged(orjson.loads(raw[b"doc"]), self.clock())
        return CustomerView(customer_id, orjson.loads(raw.get(b"segments", b"{}")), doc)

    def customer_ids(self, dimension: str | None = None, segment: str | None = None) -> list[str]:
        key = f"{self.prefix}:customers"
        if dimension and segment:
            key = f"{self.prefix}:m:{dimension}:{segment}"
        return sorted(m.decode() for m in self.client.smembers(key))

    def customers(self, ids: list[str]) -> Iterator[CustomerView]:
        clock = self.clock()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            pipe = self.client.pipeline(transaction=False)
            for cid in chunk:
                pipe.hmget(f"{self.prefix}:c:{cid}", "segments", "doc")
            for cid, (segments, doc) in zip(chunk, pipe.execute(), strict=True):
                if doc is not None:
                    yield CustomerView(cid, orjson.loads(segments or b"{}"), self.aged(orjson.loads(doc), clock))

    def counters(self) -> dict[str, dict[str, int]]:
        """Each live worker's counters, as it last published them."""
        out = {}
        for key in sorted(self.client.scan_iter(f"{self.prefix}:stats:*")):
            worker = key.decode().split(":stats:", 1)[1]
            out[worker] = {k.decode(): int(v) for k, v in self.client.hgetall(key).items()}
        return out

    def report(self, money_scale: int) -> list[tuple[str, str, int, Decimal]]:
        rows = []
        for key in sorted(self.client.scan_iter(f"{self.prefix}:amt:*")):
            dimension = key.decode().split(":", 2)[2]
            for segment, amount in sorted(self.client.hgetall(key).items()):
                name = segment.decode()
                count = int(self.client.scard(f"{self.prefix}:m:{dimension}:{name}"))
                if count:
                    rows.append((dimension, name, count, Decimal(int(amount)).scaleb(-money_scale)))
        return rows
