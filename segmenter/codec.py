"""The compact, explicit serialised form of a ``WindowState`` (what the table stores).

Format 1, all integers as LEB128 varints (signed ones zig-zagged)::

    0x01                      format version
    first_purchase + 1        0 when never purchased
    last_purchase - first + 1 0 when never purchased
    n_buckets
    per bucket:
      day delta               from the previous bucket (the first: from first_purchase, zig-zag)
      field mask              bit k set when field k of (purchases, amount, refunds, interactions,
                              complaints, referrals, sat_sum, sat_count) is non-zero
      the set fields          amount zig-zagged, the others plain
      event-id hashes         8 bytes each, as many as purchases + refunds + interactions
"""

from __future__ import annotations

import struct

from segmenter.errors import InvalidStateError
from segmenter.state import Bucket, WindowState

FORMAT = 1
_FIELDS = 8


def _put(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _zig(value: int) -> int:
    return value << 1 if value >= 0 else ((-value) << 1) - 1


def _unzig(value: int) -> int:
    return value >> 1 if not value & 1 else -((value + 1) >> 1)


def dumps(state: WindowState) -> bytes:
    out = bytearray((FORMAT,))
    first, last = state.first_purchase, state.last_purchase
    _put(out, 0 if first is None else first + 1)
    _put(out, 0 if first is None or last is None else last - first + 1)
    _put(out, len(state.buckets))
    previous = first or 0
    for bucket in state.buckets:
        _put(out, _zig(bucket.day - previous))
        previous = bucket.day
        values = bucket[1:9]
        mask = 0
        for k, v in enumerate(values):
            if v:
                mask |= 1 << k
        out.append(mask)
        for k, v in enumerate(values):
            if v:
                _put(out, _zig(v) if k == 1 else v)
        ids = bucket.ids
        if ids:
            out += struct.pack(f">{len(ids)}Q", *ids)
    return bytes(out)


def put_varint(out: bytearray, value: int) -> None:
    """A non-negative integer as a LEB128 varint."""
    _put(out, value)


def put_text(out: bytearray, text: str | None) -> None:
    """``None`` as 0, else the UTF-8 length + 1 and the bytes."""
    if text is None:
        _put(out, 0)
        return
    raw = text.encode()
    _put(out, len(raw) + 1)
    out += raw


class Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        data, pos, shift, value = self.data, self.pos, 0, 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                self.pos = pos
                return value
            shift += 7

    def text(self) -> str | None:
        n = self.varint()
        if not n:
            return None
        start, self.pos = self.pos, self.pos + n - 1
        if self.pos > len(self.data):
            raise IndexError("truncated text")
        return self.data[start : self.pos].decode()

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1]

    def hashes(self, n: int) -> tuple[int, ...]:
        """``n`` event-id hashes, sorted (the state keeps them sorted; older writers did not)."""
        start = self.pos
        self.pos += 8 * n
        if self.pos > len(self.data):
            raise IndexError("truncated event-id hash")
        return tuple(sorted(struct.unpack_from(f">{n}Q", self.data, start)))


def loads(data: bytes) -> WindowState:
    if not data or data[0] != FORMAT:
        found = data[0] if data else "nothing"
        raise InvalidStateError(f"window state: expected format {FORMAT}, found {found}")
    reader = Reader(data)
    reader.pos = 1
    try:
        first_raw, last_raw, n = reader.varint(), reader.varint(), reader.varint()
        first = first_raw - 1 if first_raw else None
        last = first + last_raw - 1 if first is not None and last_raw else None
        buckets, previous = [], first or 0
        for _ in range(n):
            day = previous + _unzig(reader.varint())
            previous = day
            mask = reader.byte()
            values = [0] * _FIELDS
            for k in range(_FIELDS):
                if mask >> k & 1:
                    v = reader.varint()
                    values[k] = _unzig(v) if k == 1 else v
            n_ids = values[0] + values[2] + values[3]
            ids = reader.hashes(n_ids)
            buckets.append(Bucket(day, *values, ids))  # type: ignore[arg-type, call-arg]
    except IndexError as exc:
        raise InvalidStateError(f"window state: truncated at byte {reader.pos} of {len(data)}") from exc
    if reader.pos != len(data):
        raise InvalidStateError(f"window state: {len(data) - reader.pos} trailing bytes")
    return WindowState(tuple(buckets), first, last)
