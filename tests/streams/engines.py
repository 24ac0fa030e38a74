"""What the engine's offline tests share: the retail rules, a topic-partition, an in-memory table store and an
engine on them with partition 0 open."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from segmenter.rules import load_ruleset
from streams.names import Names
from streams.readmodel.writer import Written
from streams.settings import Settings
from streams.worker import flush as flush_module
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


class QuietProjection:
    """Redis as a flush sees it, writing nothing: every row applied, none refused, every partition projected."""

    def __init__(self, log: list[str]) -> None:
        self.log, self.rows = log, 0

    async def erase(self, customers: Any) -> None:
        self.log.append("redis erase")

    async def quarantined(self) -> set[str]:
        return set()

    async def write_many(self, rows: Any, clocks: Any = None, partitions: Any = ()) -> Written:
        self.log.append("redis")
        self.rows += len(rows)
        return Written(applied=len(rows))

    async def release(self, customers: Any) -> None:
        pass


def quiet_io(engine: Engine, monkeypatch: Any) -> list[str]:
    """The flusher's I/O stubbed, in the order it happens: Redis, the changelogs (into the in-memory stores),
    the commit. Returns the list the steps are written to."""
    log: list[str] = []
    engine.flusher.projection = QuietProjection(log)  # type: ignore[assignment]

    async def no_producer() -> None:
        return None

    async def persist(producer: Any, table: Any, groups: Any) -> None:
        log.append("changelog" if table is engine.customers else "meta")
        for number, writes in groups.items():
            db = table._db_for_partition(number)
            for key, value in writes:
                if value is None:
                    db.pop(key, None)
                else:
                    db[key] = value

    async def commit(app: Any, offsets: Any) -> bool:
        log.append("commit")
        return True

    monkeypatch.setattr(engine, "producer", no_producer)
    monkeypatch.setattr(flush_module, "persist", persist)
    monkeypatch.setattr(flush_module.faust_compat, "commit", commit)
    return log
