"""What the engine's offline tests share: the retail rules, a topic-partition, an in-memory table store and an
engine on them with partition 0 open."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from segmenter.rules import load_ruleset
from streams.names import Names
from streams.settings import Settings
from streams.worker.engine import Engine
from streams.worker.partition import Partition

RULES = (Path(__file__).parents[2] / "examples/rules/retail-value.yaml").read_text()


class TP(NamedTuple):
    topic: str
    partition: int


class Store:
    """A table's store in memory: empty at the start, then what a test's flushes wrote into it."""

    def __init__(self) -> None:
        self.data = self
        self.partitions: dict[int, dict[bytes, bytes]] = {}

    def _db_for_partition(self, partition: int) -> dict[bytes, bytes]:
        return self.partitions.setdefault(partition, {})

    def _visible_items(self, db: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        return list(db.items())


def engine_on(ruleset: str | None = None, **overrides: Any) -> tuple[Engine, Names, list[bytes]]:
    """An engine on in-memory stores with partition 0 open (under ``ruleset``, if given), flushing only when a test
    says; ``overrides``: settings, unvalidated (a test may go below a setting's floor). The list receives the
    segment-change documents the producer would be handed."""
    settings = Settings(clock="event", flush_interval_s=1e6, flush_max_dirty=10**9, partitions=1).model_copy(
        update=overrides)  # one partition: every key belongs on partition 0 (streams/worker/routing.py)
    names = Names(settings.topic_prefix)
    engine = Engine(SimpleNamespace(), settings, names,
                    {names.customers_table: Store(), names.partitions_table: Store()})
    engine.parts[0] = Partition(0, ruleset=None if ruleset is None else load_ruleset(ruleset))
    sent: list[bytes] = []

    async def send_outputs() -> None:  # what the producer would be handed
        for part in engine.parts.values():
            sent.extend(value for _, value in part.changes)
            part.changes = []

    engine._send_outputs = send_outputs  # type: ignore[method-assign]
    return engine, names, sent
