"""The dead-letter record of an input record that could not be used: its original bytes, where it was, why."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError

from schemas import first_error
from schemas.outputs import DeadLetter
from streams.text import clip

log = logging.getLogger("segmenter.deadletters")


Reason = Literal["bad_input", "processing_error", "wrong_partition"]


def dead_letter(tp: Any, record: Any, exc: Exception, reason: Reason = "bad_input") -> tuple[bytes | None, bytes]:
    """The dead-letter record of an input record (the original bytes, where it was, why), logged."""
    key = record.key if isinstance(record.key, bytes) else None
    error = first_error(exc) if isinstance(exc, ValidationError) else (
        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    letter = DeadLetter(
        source_topic=tp.topic, partition=tp.partition, offset=record.offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode(record.value or b"").decode(), error_class=type(exc).__name__,
        error_message=clip(error, 1000), reason=reason, failed_at=datetime.now(UTC))
    if reason == "wrong_partition":
        pass  # streams/worker/routing.py logs these, at most once a minute per topic
    elif reason == "bad_input":
        log.warning("%s[%d] offset=%d customer=%s error=%s", tp.topic, tp.partition, record.offset,
                    clip(key) if key else "-", clip(error, 200))
    else:
        log.error("%s[%d] offset=%d customer=%s: processing the record raised %s: %s (sent to dead letters as a "
                  "processing_error; the partition goes on)", tp.topic, tp.partition, record.offset,
                  clip(key) if key else "-", type(exc).__name__, clip(error, 200), exc_info=exc)
    return key, letter.model_dump_json().encode()
