"""The client examples of docs/integrating.md (examples/clients/) against the embedded broker: purchases published
with aiokafka and with confluent-kafka (librdkafka, murmur2_random) reach the worker that owns each customer, and
a consumer group of one's own reads the segment changes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from streams.kafka.reading import read_from, true_ends
from streams.kafka.topics import customer_partition
from streams.names import Names
from streams.readmodel.reader import ReadModel
from tests.integration.helpers import RETAIL, ROOT, consume_all

CLIENTS = ROOT / "examples" / "clients"


def run_example(name: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(CLIENTS / name), *args], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_producer_examples_reach_each_customers_partition_and_the_consumer_reads_the_changes(system):
    settings, names = system.settings, Names(system.settings.topic_prefix)
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker()
    assert run_example("produce_aiokafka.py", settings.kafka_bootstrap, settings.topic_prefix) == "sent 3 purchases\n"
    assert run_example("produce_confluent.py", settings.kafka_bootstrap, settings.topic_prefix) == "sent 2 purchases\n"
    assert system.run("wait", "--timeout", "120") == 0
    placed = {(k.decode(), p) for p, k in _partitions(settings, names.transactions)}
    assert placed == {(c, customer_partition(settings, c)) for c in ("C-1001", "C-1002", "C-2001", "C-2002")}
    view = ReadModel.of(settings).customer("C-1001")
    assert view is not None
    assert view.doc["metrics"]["purchases_12m"] == 2
    assert consume_all(settings, names.dead_letters) == []
    out = run_example("consume_changes.py", settings.kafka_bootstrap, settings.topic_prefix, "5")
    assert "C-1001 value low_value" in out.splitlines()
    assert "C-2002 value low_value" in out.splitlines()


def _partitions(settings, topic: str) -> list[tuple[int, bytes]]:
    ends = asyncio.run(true_ends(settings, [topic]))
    found = asyncio.run(read_from(settings, dict.fromkeys(ends, 0), ends))
    return [(tp.partition, key) for tp, _, key, _ in found if key is not None]
