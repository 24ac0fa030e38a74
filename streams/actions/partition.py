"""The action worker's per-partition entry in its ledger table: how far its segment changes had an effect, how far
the output topics are known, the dwells waiting, and its stream time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from segmenter.actions import ChangeView, Pending


def _view_of(doc: dict[str, Any]) -> ChangeView:
    return ChangeView(doc["change_id"], doc["customer_id"], doc["dimension"], doc["before"], doc["after"],
                      doc["stream_s"], doc["ruleset_id"], doc["ruleset_version"], doc.get("profile", {}),
                      doc.get("cause", "event"))


def _view_doc(view: ChangeView) -> dict[str, Any]:
    return {"change_id": view.change_id, "customer_id": view.customer_id, "dimension": view.dimension,
            "before": view.before, "after": view.after, "stream_s": view.stream_s, "ruleset_id": view.ruleset_id,
            "ruleset_version": view.ruleset_version, "profile": dict(view.profile), "cause": view.cause}


@dataclass
class ActionPartition:
    """The ledger's per-partition entry."""

    number: int
    done: int = -1  # last segment-changes offset that had an effect (records at or below it are skipped)
    reach: dict[str, int] = field(default_factory=dict)  # output topic -> next offset the ledger knows of
    pending: list[Pending] = field(default_factory=list)
    clock: float = 0.0  # stream time: the newest change or tick seen (not persisted: it only moves forward)

    @property
    def key(self) -> bytes:
        return f"\x00meta:{self.number}".encode()

    def to_bytes(self) -> bytes:
        return orjson.dumps({"done": self.done, "reach": self.reach, "pending": [
            [p.due_s, p.action_id, _view_doc(p.change)] for p in self.pending]})

    @classmethod
    def from_bytes(cls, number: int, raw: bytes | None) -> ActionPartition:
        if raw is None:
            return cls(number)
        doc = orjson.loads(raw)
        pending = [Pending(due, action, _view_of(view)) for due, action, view in doc["pending"]]
        return cls(number, doc["done"], doc["reach"], pending)
