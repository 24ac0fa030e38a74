"""The durable side of the engine: producer batches, changelog + store writes, dead letters, failpoints."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from schemas import first_error
from schemas.outputs import DeadLetter
from streams import faust_compat
from streams.projection import ProjectedCustomer
from streams.text import clip

log = logging.getLogger("segmenter.worker")


@dataclass
class Snapshot:
    """What a flush writes. Taken at once; the changed customers' records (immutable values) are
    encoded afterwards, in slices, into ``customers`` (per partition) and ``projected``."""

    changed: list[tuple[int, int, int | None, str, Any]]  # partition, its epoch, its day, customer, record
    meta: dict[int, bytes]
    clocks: dict[int, tuple[str, int]]
    offsets: dict[Any, int]
    deliveries: list[asyncio.Future[Any]]
    customers: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    projected: list[ProjectedCustomer] = field(default_factory=list)


async def send_batches(producer: AIOKafkaProducer, topic: str, partition: int,
                       records: Sequence[tuple[bytes | None, bytes]]) -> list[tuple[asyncio.Future[Any], int]]:
    """Whole producer batches: (delivery future, record count) per batch; a batch reports its base offset."""
    sent = []
    batch, count = producer.create_batch(), 0
    for key, value in records:
        if batch.append(key=key, value=value, timestamp=None) is None:
            sent.append((await producer.send_batch(batch, topic, partition=partition), count))
            batch, count = producer.create_batch(), 0
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit a producer batch")
        count += 1
    if count:
        sent.append((await producer.send_batch(batch, topic, partition=partition), count))
    return sent


async def persist(producer: AIOKafkaProducer, table: Any, groups: Mapping[int, list[tuple[bytes, bytes]]]) -> None:
    """Changelog first (acknowledged), then the local store and the changelog offset it holds."""
    topic = table.changelog_topic.get_topic_name()
    pending = [(partition, writes, await send_batches(producer, topic, partition, writes))
               for partition, writes in groups.items() if writes]
    for partition, writes, sent in pending:
        results = await asyncio.gather(*(f for f, _ in sent))
        faust_compat.store_write(table, partition, writes)
        faust_compat.set_persisted_offset(table, partition, results[-1].offset + sent[-1][1] - 1)


def dead_letter(tp: Any, record: Any, exc: Exception,
                reason: Literal["bad_input", "processing_error"] = "bad_input") -> tuple[bytes | None, bytes]:
    """The dead-letter record of an input record (the original bytes, where it was, why), logged."""
    key = record.key if isinstance(record.key, bytes) else None
    error = first_error(exc) if isinstance(exc, ValidationError) else (
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    letter = DeadLetter(
        source_topic=tp.topic, partition=tp.partition, offset=record.offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(record.value or b"").decode(), error_class=type(exc).__name__,
        error_message=clip(error, 1000), reason=reason, failed_at=datetime.now(UTC))
    if reason == "bad_input":
        log.warning("%s[%d] offset=%d customer=%s error=%s", tp.topic, tp.partition, record.offset,
                    clip(key) if key else "-", clip(error, 200))
    else:
        log.error("%s[%d] offset=%d customer=%s: processing the record raised %s: %s (sent to dead letters as a "
                  "processing_error; the partition goes on)", tp.topic, tp.partition, record.offset,
                  clip(key) if key else "-", type(exc).__name__, clip(error, 200), exc_info=exc)
    return key, letter.model_dump_json().encode()


class Failpoints:
    """Crash tests: die the hard way at a chosen point (the ``failpoint`` setting: ``mid-batch:N``,
    ``before-persist:N`` or ``before-commit:N`` in the segmenter worker, ``after-grant:N`` in the action
    worker: after its Nth acknowledged grant, before the ledger write; ``process-error:N`` raises while
    applying the Nth record instead, as a defect would; several joined by commas)."""

    POINTS = ("mid-batch", "before-persist", "before-commit", "after-grant", "process-error")
    RAISES = ("process-error",)  # raises FailpointError once, at the Nth record, instead of killing

    def __init__(self, spec: str) -> None:
        self.left: dict[str, int] = {}
        for item in filter(None, spec.split(",")):
            name, _, count = item.partition(":")
            if name not in self.POINTS or not count.isdigit():
                raise ValueError(f"failpoint {item!r}: expected one of {', '.join(p + ':N' for p in self.POINTS)}")
            self.left[name] = int(count)

    def __bool__(self) -> bool:
        return bool(self.left)

    def hit(self, point: str) -> None:
        if point in self.left:
            self.left[point] -= 1
            if self.left[point] <= 0:
                if point in self.RAISES:
                    del self.left[point]
                    raise FailpointError(f"failpoint {point} reached")
                log.warning("failpoint %s reached: SIGKILL", point)
                os.kill(os.getpid(), signal.SIGKILL)


class FailpointError(RuntimeError):
    """Raised by a test's failpoint where a defect would raise."""
