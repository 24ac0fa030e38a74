"""Reading the Redis read model (export, customer, report)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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

    def customer(self, customer_id: str) -> CustomerView | None:
        raw = self.client.hgetall(f"{self.prefix}:c:{customer_id}")
        if not raw:
            return None
        return CustomerView(customer_id, orjson.loads(raw.get(b"segments", b"{}")), orjson.loads(raw[b"doc"]))

    def customer_ids(self, dimension: str | None = None, segment: str | None = None) -> list[str]:
        key = f"{self.prefix}:customers"
        if dimension and segment:
            key = f"{self.prefix}:m:{dimension}:{segment}"
        return sorted(m.decode() for m in self.client.smembers(key))

    def customers(self, ids: list[str]) -> Iterator[CustomerView]:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            pipe = self.client.pipeline(transaction=False)
            for cid in chunk:
                pipe.hmget(f"{self.prefix}:c:{cid}", "segments", "doc")
            for cid, (segments, doc) in zip(chunk, pipe.execute(), strict=True):
                if doc is not None:
                    yield CustomerView(cid, orjson.loads(segments or b"{}"), orjson.loads(doc))

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
