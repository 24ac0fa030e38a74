"""What a fast path is handed (``faust_compat.install``): the shapes of a fetched record and of its topic-partition,
as the worker and the action worker read them. aiokafka's ``ConsumerRecord`` and faust's ``TP`` have them; so do the
stand-ins tests build."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol


class TP(Protocol):
    """faust's ``TP`` (a named tuple, so usable as a key)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


class Record(Protocol):
    """aiokafka's ``ConsumerRecord``, as far as segmenter reads it."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


Batch = Mapping[TP, Sequence[Record]]
"""One fetch's records of a fast path's topics, per partition, in offset order."""
Current = Callable[[TP], bool]
"""Whether a partition is still this process's, in the generation the batch was fetched in."""
