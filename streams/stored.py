"""How a customer is stored in the ``customers`` table (and in Redis): a 6-byte header, then the core's record."""

from __future__ import annotations

import struct

from segmenter import step

HEADER = struct.Struct(">HI")  # partition, due day (0: none); read without decoding the record


def pack(partition: int, record: step.CustomerRecord, state: bytes | None = None) -> bytes:
    """``state``: the record's window state already encoded, if it is."""
    return HEADER.pack(partition, record.due or 0) + step.dumps(record, state)


def unpack(value: bytes) -> step.CustomerRecord:
    return step.loads(value[HEADER.size :])


def unpack_encoded(value: bytes) -> tuple[bytes, step.CustomerRecord]:
    """The record, and its window state's encoding as stored (``step.loads_encoded``)."""
    return step.loads_encoded(value[HEADER.size :])


def due_of(value: bytes) -> int:
    return int(HEADER.unpack_from(value)[1])
