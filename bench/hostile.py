"""A corpus of hostile input records: every kind a producer can get wrong, each bound for dead letters."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import orjson

Doc = dict[str, object]


def _good(customer: str, n: int) -> Doc:
    return {"event_id": f"hostile-{n}", "customer_id": customer, "occurred_at": "2025-06-01T10:00:00+08:00",
            "amount": "12.50", "order_id": f"ho-{n}"}


def _with(**fields: object) -> Callable[[str, int, random.Random], tuple[bytes | None, bytes | None]]:
    def make(customer: str, n: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
        return customer.encode(), orjson.dumps({**_good(customer, n), **fields})
    return make


def _raw(value: bytes | None, keyed: bool = True) -> Callable[[str, int, random.Random], tuple[bytes | None,
                                                                                                bytes | None]]:
    def make(customer: str, n: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
        return (customer.encode() if keyed else None), value
    return make


def _garbage(customer: str, n: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    return customer.encode(), rng.randbytes(rng.randint(1, 300))


def _truncated(customer: str, n: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    whole = orjson.dumps(_good(customer, n))
    return customer.encode(), whole[: rng.randint(1, len(whole) - 1)]


def _wrong_key(customer: str, n: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    return b"not-" + customer.encode(), orjson.dumps(_good(customer, n))


def _huge_id(customer: str, n: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    big = "Z" * 100_000
    return big.encode(), orjson.dumps({**_good(big, n)})


def _array(customer: str, n: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    return customer.encode(), orjson.dumps([_good(customer, n)])


def _big_string(customer: str, n: int, rng: random.Random) -> tuple[bytes | None, bytes | None]:
    return customer.encode(), orjson.dumps({**_good(customer, n), "channel": "w" * 100_000})


KINDS: dict[str, Callable[[str, int, random.Random], tuple[bytes | None, bytes | None]]] = {
    "garbage bytes": _garbage,
    "truncated JSON": _truncated,
    "deep nesting": _raw(b'{"customer_id": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    "NaN amount": _raw(b'{"event_id": "n", "customer_id": "x", "occurred_at": "2025-06-01T10:00:00Z", '
                       b'"amount": NaN, "order_id": "o"}'),
    "Infinity amount": _with(amount="Infinity"),
    "huge exponent": _with(amount="1e400"),
    "above max_amount": _with(amount="5000000000000.00"),
    "negative amount": _with(amount="-12.50"),
    "far-future time": _with(occurred_at="2300-01-01T00:00:00Z"),
    "ancient time": _with(occurred_at="0001-01-01T00:00:00Z"),
    "naive time": _with(occurred_at="2025-06-01T10:00:00"),
    "wrong types": _with(amount={"value": 12}, order_id=7),
    "key is not the customer id": _wrong_key,
    "100 kB customer id": _huge_id,
    "100 kB string": _big_string,
    "array, not object": _array,
    "unknown event kind": _with(kind="teleport"),
    "too many decimals": _with(amount="12.505"),
    "empty value": _raw(b""),
    "null value (tombstone)": _raw(None),
    "no key": _raw(b'{"event_id": "k", "customer_id": "C", "occurred_at": "2025-06-01T10:00:00Z", "amount": "1", '
                   b'"order_id": "o"}', keyed=False),
}


def corpus(customers: list[str], count: int, seed: int = 11) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """``count`` hostile records, every kind in turn, keyed like real customers: (kind, key, value)."""
    rng = random.Random(seed)
    kinds = list(KINDS.items())
    for n in range(count):
        name, make = kinds[n % len(kinds)]
        key, value = make(rng.choice(customers), n, rng)
        yield name, key, value
