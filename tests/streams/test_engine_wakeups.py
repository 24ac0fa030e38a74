"""Time wake-ups with superseded heap entries: once the stream reaches a day, no customer due on or before it is
left waiting, and the heap stays within twice the live entries. (This population does not make the heap rebuild
in the middle of one day's wake-ups: the engine re-reads ``part.heap`` in that loop for that case, untested.)"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import orjson

from segmenter.rules import load_ruleset
from streams.names import Names
from streams.settings import Settings
from streams.worker.engine import Engine
from streams.worker.partition import Partition
from tests.streams.engines import RULES, Store


def test_no_due_customer_is_left_behind_and_the_heap_stays_bounded():
    settings = Settings(clock="event")
    names = Names(settings.topic_prefix)
    engine = Engine(SimpleNamespace(), settings, names,
                    {names.customers_table: Store(), names.partitions_table: Store()})
    part = Partition(0, ruleset=load_ruleset(RULES))
    decode = engine.edge.decoders[names.transactions]
    start, offset = datetime(2025, 1, 6, 9, tzinfo=UTC), 0

    def buy(customer: str, when: datetime) -> None:
        nonlocal offset
        doc = {"event_id": f"e{offset}", "customer_id": customer, "occurred_at": when.isoformat(),
               "amount": "120.00", "order_id": f"o{offset}"}
        op, args = decode(SimpleNamespace(key=customer.encode(), value=orjson.dumps(doc), offset=offset))
        engine._ops[op](part, *args)
        offset += 1

    # 3,000 customers buy once in January; 60 busy ones buy daily through June, each purchase moving their
    # due day: the heap fills with superseded entries until it is rebuilt, also while wake-ups run.
    for i in range(3000):
        buy(f"Q{i:05d}", start + timedelta(minutes=i))
    for day in range(1, 170):
        for i in range(60):
            buy(f"B{i:03d}", start + timedelta(days=day, minutes=i))
            assert all(due > part.day for due in part.dues.values()), f"day {day}: a due customer waits"
    # superseded entries up to just below the rebuild threshold before the last jump in time
    far = max(part.dues.values()) + 10_000
    part.heap.extend((far, f"gone-{n}") for n in range(2 * len(part.dues) + 1000 - len(part.heap)))
    heapq.heapify(part.heap)
    engine.store.advance(part, start + timedelta(days=400))
    assert all(due > part.day for due in part.dues.values())
    assert len(part.heap) <= 2 * len(part.dues) + 1024
    assert engine.stats["time_wakeups"] >= 3000  # the January buyers went to churn risk, then out of the window
