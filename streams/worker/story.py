"""A change as the customer's story lists it (the Redis list ``P:h:<customer>``): short JSON, no metrics."""

from __future__ import annotations

import orjson

from segmenter import step


def story_entry(change: step.AnyChange, stream_time: str) -> bytes:
    """``{"at", "cause", "why"}`` and ``"dimension", "from", "to"`` for a segment change, ``"tag", "added"`` for a
    tag change."""
    if isinstance(change, step.TagChange):
        return orjson.dumps({"at": stream_time, "tag": change.tag, "added": change.added, "cause": change.cause,
                             "why": change.condition})
    return orjson.dumps({"at": stream_time, "dimension": change.dimension, "from": change.before, "to": change.after,
                         "cause": change.cause, "why": change.explanation.condition})
