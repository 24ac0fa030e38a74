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
      event-id hashes         8 bytes each (big-endian), ascending, as many as purchases + refunds +
                                interactions

Format 2 is format 1 (with 0x02 first) followed by the days whose transactions carried a category or a profit
(``state.Extra``); a state without them is written as format 1::

    n_extras
    per extra:
      day delta               from the previous extra (the first: from first_purchase, zig-zag)
      profit, profited        zig-zag
      priced
      n_categories
      per category:           UTF-8 length + 1 and the name, purchases, amount (zig-zag)
"""

from __future__ import annotations

from collections.abc import Iterator

from segmenter.errors import InvalidStateError
from segmenter.extras import Extra, ExtraSums, extra_sums
from segmenter.state import Bucket, WindowState, new_tuple

FORMAT = 1
FORMAT_EXTRAS = 2
_FIELDS = 8


def _put(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def dumps(state: WindowState) -> bytes:
    out = _buckets(state.buckets, state.first_purchase or 0, _header(state))
    if state.extras:
        _extras(out, state.extras, state.first_purchase or 0)
    return bytes(out)


def _zigzag(value: int) -> int:
    return value << 1 if value >= 0 else ((-value) << 1) - 1


def _unzigzag(z: int) -> int:
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


def _extras(out: bytearray, extras: tuple[Extra, ...], previous: int) -> None:
    _put(out, len(extras))
    for day, profit, profited, priced, cats in extras:
        _put(out, _zigzag(day - previous))
        previous = day
        _put(out, _zigzag(profit))
        _put(out, _zigzag(profited))
        _put(out, priced)
        _put(out, len(cats))
        for name, n, amount in cats:
            put_text(out, name)
            _put(out, n)
            _put(out, _zigzag(amount))


def _read_extras(reader: Reader, previous: int) -> tuple[Extra, ...]:
    out: list[Extra] = []
    for _ in range(reader.varint()):
        step = _unzigzag(reader.varint())
        if out and step <= 0:
            raise InvalidStateError(f"window state: extras' days out of order at byte {reader.pos}")
        previous += step
        profit, profited, priced = _unzigzag(reader.varint()), _unzigzag(reader.varint()), reader.varint()
        cats: list[tuple[str, int, int]] = []
        for _ in range(reader.varint()):
            name = reader.text()
            if not name or (cats and name <= cats[-1][0]):
                raise InvalidStateError(f"window state: a category without a name or out of order at byte "
                                        f"{reader.pos}")
            cats.append((name, reader.varint(), _unzigzag(reader.varint())))
        out.append(Extra(previous, profit, profited, priced, tuple(cats)))
    return tuple(out)


def _header(state: WindowState) -> bytearray:
    first, last = state.first_purchase, state.last_purchase
    out = bytearray((FORMAT_EXTRAS if state.extras else FORMAT,))
    _put(out, 0 if first is None else first + 1)
    _put(out, 0 if first is None or last is None else last - first + 1)
    _put(out, len(state.buckets))
    return out


def _buckets(buckets: tuple[Bucket, ...], previous: int, out: bytearray | None = None) -> bytearray:  # noqa: PLR0912
    """The buckets' encoding (appended to ``out``), day deltas starting from ``previous`` (unrolled: the
    flush's hot loop)."""
    if out is None:
        out = bytearray()
    append = out.append
    for day, p, a, r, i, c, ref, ss, sc, ids in buckets:
        delta, previous = day - previous, day
        z = delta << 1 if delta >= 0 else ((-delta) << 1) - 1
        if z < 0x80:
            append(z)
        else:
            _put(out, z)
        rest = r or i or c or ref or ss or sc
        append((1 if p else 0) | (2 if a else 0) | ((4 if r else 0) | (8 if i else 0) | (16 if c else 0)
                                                    | (32 if ref else 0) | (64 if ss else 0) | (128 if sc else 0)
                                                    if rest else 0))
        if p:
            if p < 0x80:
                append(p)
            else:
                _put(out, p)
        if a:
            z = a << 1 if a >= 0 else ((-a) << 1) - 1
            if z < 0x4000:  # most amounts: two bytes at most
                if z < 0x80:
                    append(z)
                else:
                    append((z & 0x7F) | 0x80)
                    append(z >> 7)
            else:
                _put(out, z)
        if rest:
            for v in (r, i, c, ref, ss, sc):
                if v:
                    _put(out, v)
        out += ids  # the day's event-id hashes, 8 bytes each, as the bucket holds them
    return out


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
        value = self.data[self.pos]
        self.pos += 1
        if value >= 0x80:
            value, self.pos = _continued(self.data, self.pos, value)
        return value

    def text(self) -> str | None:
        n = self.varint()
        if not n:
            return None
        start, self.pos = self.pos, self.pos + n - 1
        if self.pos > len(self.data):
            raise IndexError("truncated text")
        return self.data[start : self.pos].decode()


Sums = tuple[tuple[int, ...], tuple[int, ...], int | None, int | None, ExtraSums | None]


def _opened(data: bytes) -> tuple[int | None, int | None, int, int]:
    """An encoded state's header: first and last purchase days, the bucket count, where the buckets start."""
    if not data or data[0] not in (FORMAT, FORMAT_EXTRAS):
        found = data[0] if data else "nothing"
        raise InvalidStateError(f"window state: expected format {FORMAT} or {FORMAT_EXTRAS}, found {found}")
    reader = Reader(data)
    reader.pos = 1
    try:
        first_raw, last_raw, n = reader.varint(), reader.varint(), reader.varint()
    except IndexError as exc:
        raise InvalidStateError(f"window state: truncated at byte {reader.pos} of {len(data)}") from exc
    first = first_raw - 1 if first_raw else None
    last = first + last_raw - 1 if first is not None and last_raw else None
    return first, last, n, reader.pos


Walked = tuple[int, int, int, int, int, int, int, int, int, int]


def _walk(data: bytes, n: int, pos: int, day: int) -> Iterator[Walked]:
    """Each of the ``n`` buckets encoded from ``pos`` on: (day, purchases, amount, refunds, interactions,
    complaints, referrals, sat_sum, sat_count, where its event-id hashes start), in one pass over the bytes with
    the first byte of each varint read inline (``loads`` and ``sums`` are hot); IndexError past the end."""
    for _ in range(n):
        z = data[pos]
        pos += 1
        if z >= 0x80:  # the first byte inline (most deltas are one byte), the rest in _continued
            z, pos = _continued(data, pos, z)
        day += z >> 1 if not z & 1 else -((z + 1) >> 1)
        mask = data[pos]
        pos += 1
        values = [0] * _FIELDS
        k = 0
        while mask:
            if mask & 1:
                v = data[pos]
                pos += 1
                if v >= 0x80:
                    v, pos = _continued(data, pos, v)
                values[k] = (v >> 1 if not v & 1 else -((v + 1) >> 1)) if k == 1 else v
            mask >>= 1
            k += 1
        p, a, r, i, c, ref, ss, sc = values
        yield day, p, a, r, i, c, ref, ss, sc, pos
        pos += 8 * (p + r + i)


def _continued(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """A varint whose first byte ``first`` (>= 0x80) was read, its next at ``pos``: (its value, the position after
    it)."""
    value, shift = first & 0x7F, 7
    while True:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def sums(data: bytes, as_of: int, long_start: int, short_start: int) -> Sums:
    """``(long, short, first_purchase, last_purchase, extra)`` of an encoded state as of ``as_of``, equal to
    ``totals_at(loads(data), ...)``'s window sums, read straight from the bytes: no bucket objects, event-id hashes
    skipped (what ``rules preview`` needs of a million customers)."""
    first, last, n, end = _opened(data)
    lo, sh = [0] * 7, [0] * 4
    extras = data[0] == FORMAT_EXTRAS  # every bucket is walked, to find where the extras start
    try:
        for day, p, a, r, i, c, ref, ss, sc, at in _walk(data, n, end, first or 0):
            end = at + 8 * (p + r + i)
            if day > as_of:
                if extras:
                    continue
                break
            if day >= long_start:
                lo[0] += p
                lo[1] += a
                lo[2] += r
                lo[3] += i
                lo[4] += ref
                lo[5] += ss
                lo[6] += sc
            if day >= short_start:
                sh[0] += p
                sh[1] += a
                sh[2] += i
                sh[3] += c
    except (IndexError, ValueError) as exc:  # ValueError: compiled, an index past any i64 (a garbled count)
        raise InvalidStateError(f"window state: truncated after byte {end} of {len(data)}") from exc
    if end > len(data):
        raise InvalidStateError(f"window state: truncated at byte {len(data)}: {end} expected")
    extra = None
    if extras:
        extra = extra_sums(_tail(data, end, first or 0), long_start, as_of)
    return tuple(lo), tuple(sh), first, last, extra


def _tail(data: bytes, end: int, first: int) -> tuple[Extra, ...]:
    """The extras of a format-2 state whose buckets end at ``end``."""
    reader = Reader(data)
    reader.pos = end
    try:
        extras = _read_extras(reader, first)
    except (IndexError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidStateError(f"window state: its categories and profit are truncated or garbled after byte "
                                f"{reader.pos} of {len(data)}") from exc
    if reader.pos != len(data):
        raise InvalidStateError(f"window state: {len(data) - reader.pos} trailing bytes")
    return extras


def loads(data: bytes) -> WindowState:
    first, last, n, end = _opened(data)
    buckets: list[Bucket] = []
    append = buckets.append
    try:
        for day, p, a, r, i, c, ref, ss, sc, at in _walk(data, n, end, first or 0):
            end = at + 8 * (p + r + i)
            ids = data[at:end]  # past the end: short, and found below
            if end - at > 8:
                ids = _ascending(ids)
            append(new_tuple(Bucket, (day, p, a, r, i, c, ref, ss, sc, ids)))
    except (IndexError, ValueError) as exc:  # ValueError: compiled, an index past any i64 (a garbled count)
        raise InvalidStateError(f"window state: truncated after byte {end} of {len(data)}") from exc
    if data[0] == FORMAT_EXTRAS and end <= len(data):
        return WindowState(tuple(buckets), first, last, None, _tail(data, end, first or 0))
    if end != len(data):
        raise InvalidStateError(f"window state: {len(data) - end} trailing bytes" if end < len(data)
                                else f"window state: truncated at byte {len(data)}: {end} expected")
    return WindowState(tuple(buckets), first, last)


def _ascending(ids: bytes) -> bytes:
    """A day's 8-byte hashes in ascending order (older writers did not sort them)."""
    chunks = [ids[k : k + 8] for k in range(0, len(ids), 8)]
    ordered = sorted(chunks)
    return ids if ordered == chunks else b"".join(ordered)
