"""``StateEncoder``: the flushes' encoder of window states, which keeps what it can from one write of a customer to
the next (a very active customer's older days; a state read back from the store and written again unchanged). Its
output is always ``codec.dumps``'s; the format is ``segmenter.codec``'s."""

from __future__ import annotations

from segmenter.codec import _buckets, _extras, _header, dumps
from segmenter.state import Bucket, WindowState


class StateEncoder:
    """``dumps`` for states that are written again and again (the worker's flushes).

    A very active customer has a bucket for nearly every day of the year, and between two flushes
    usually only its newest day changed. For states of at least ``min_buckets`` buckets this keeps,
    per key, the encoding of all buckets but the last, and re-encodes only what changed after them:
    buckets are immutable values, so an unchanged prefix (compared by identity, in C) encodes the same.
    Anything else (a day dropped off the front, an out-of-order day) is encoded in full. The output
    equals ``dumps``; ``max_bytes`` bounds the memory held (all is forgotten when it is reached).
    """

    __slots__ = ("_held", "_memo", "_read", "max_bytes", "min_buckets")

    def __init__(self, min_buckets: int = 8, max_bytes: int = 64 << 20) -> None:
        self.min_buckets, self.max_bytes = min_buckets, max_bytes
        self._memo: dict[str, tuple[int, tuple[Bucket, ...], bytes]] = {}
        self._read: dict[str, tuple[WindowState, bytes]] = {}  # states as read back, with the bytes they came from
        self._held = 0

    def read(self, key: str, state: WindowState, encoded: bytes) -> None:
        """``state`` was decoded from ``encoded`` (read back from the store): written again unchanged (a rules change,
        a customer woken by time, a tag), it is not encoded again. Kept until ``dumps`` or ``forget`` of ``key``."""
        if key in self._read:
            self._forget_read(key)
        held = len(encoded) + 100
        if self._held + held > self.max_bytes:
            self._clear()
        self._read[key] = (state, encoded)
        self._held += held

    def dumps(self, key: str, state: WindowState) -> bytes:
        if key in self._read:
            was, encoded = self._read[key]
            self._forget_read(key)
            if was is state:  # states are immutable values: the same object encodes the same
                return encoded
        buckets, first = state.buckets, state.first_purchase or 0
        memo = self._memo
        if len(buckets) < self.min_buckets:
            if key in memo:
                self._forget(key)
            return dumps(state)
        seen = memo.get(key)
        done, prefix = 0, b""
        if seen is not None:
            seen_first, seen_buckets, seen_prefix = seen
            k = len(seen_buckets)
            if seen_first == first and buckets[:k] == seen_buckets:
                done, prefix = k, seen_prefix
            self._forget(key)
        last = len(buckets) - 1
        middle = _buckets(buckets[done:last], buckets[done - 1].day if done else first)
        prefix = prefix + middle if middle else prefix
        held = _held_bytes(prefix, last)
        if self._held + held > self.max_bytes:
            self._clear()
        memo[key] = (first, buckets[:last], prefix)
        self._held += held
        out = _header(state)
        out += prefix
        _buckets(buckets[last:], buckets[last - 1].day if last else first, out)
        if state.extras:
            _extras(out, state.extras, first)
        return bytes(out)

    def __contains__(self, key: object) -> bool:
        return key in self._memo or key in self._read

    def __len__(self) -> int:
        return len(self._memo.keys() | self._read.keys())

    def forget(self, key: str) -> None:
        """Drop what is kept for ``key`` (if anything): its state is no longer held elsewhere, and the memo's
        buckets would keep that state's buckets alive (about 4 KB for an active customer)."""
        if key in self._memo:
            self._forget(key)
        if key in self._read:
            self._forget_read(key)

    def _forget(self, key: str) -> None:
        _, buckets, prefix = self._memo.pop(key)
        self._held -= _held_bytes(prefix, len(buckets))

    def _forget_read(self, key: str) -> None:
        _, encoded = self._read.pop(key)
        self._held -= len(encoded) + 100

    def _clear(self) -> None:
        self._memo.clear()
        self._read.clear()
        self._held = 0


def _held_bytes(prefix: bytes, buckets: int) -> int:
    """Roughly what one memo entry holds: the bytes, a tuple of ``buckets`` pointers, the entry (the buckets
    themselves are the live state's, as long as the caller ``forget``s the keys whose state it drops)."""
    return len(prefix) + 8 * buckets + 200
