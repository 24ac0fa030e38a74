"""Every use of a faust internal, in one place (tests/streams/test_faust_compat.py pins them).

faust's table recovery reads each changelog partition up to the end that ``end_offsets()``
(ListOffsets) reports. Some Kafka-protocol brokers report the base offset of the last record batch
there, so recovery would silently skip the last batch of writes. This transport's consumer takes a
partition's end from a fetch instead — on Apache Kafka both agree, so it is safe everywhere.

faust also hard-codes the consumer's ``fetch_max_wait_ms`` to 1500 ms; a broker that holds a fetch
that long before answering adds that much latency to every event. ``FETCH_MAX_WAIT_MS`` sets it.

It is registered as the broker URL scheme ``segmenter-kafka://``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer
from faust.transport import drivers
from faust.transport.drivers import aiokafka as driver

from streams.kafka_ops import fetched_ends

SCHEME = "segmenter-kafka"
FETCH_MAX_WAIT_MS = {"value": 100}  # set by the worker from its settings before the app starts


class ConsumerThread(driver.AIOKafkaConsumerThread):  # type: ignore[misc]
    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS["value"]  # read by start() when it builds the fetcher
        return consumer

    async def _highwaters(self, partitions: list[Any]) -> Mapping[Any, int]:
        listed = await super()._highwaters(partitions)
        if self.consumer.in_transaction:
            return listed
        bootstrap = ",".join(f"{u.host}:{u.port or 9092}" for u in self.app.conf.broker)
        return await fetched_ends(bootstrap, list(partitions), listed)


class Consumer(driver.Consumer):  # type: ignore[misc]
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(driver.Transport):  # type: ignore[misc]
    Consumer = Consumer


def register(fetch_max_wait_ms: int = 100) -> str:
    """Make ``segmenter-kafka://`` resolve to this transport; returns the scheme."""
    FETCH_MAX_WAIT_MS["value"] = fetch_max_wait_ms
    drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    return SCHEME
