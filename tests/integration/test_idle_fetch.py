"""The consumer's fetches wait longer while the input is idle and go back to the short wait with the first record
(``streams.kafka.faust_compat.IdleFetches``), against the embedded broker."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaProducer

from streams.kafka.faust_compat import IdleFetches
from streams.kafka.reading import tail
from streams.kafka.security import kafka_options
from streams.kafka.topics import create_topics
from streams.names import Names


async def _until(predicate, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def test_an_idle_topic_is_fetched_with_the_longer_wait_and_a_record_brings_the_short_one_back(system):
    settings = system.settings
    await create_topics(settings)
    topic = Names(settings.topic_prefix).transactions
    consumer = await tail(settings, topic, fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(**kafka_options(settings))
    await producer.start()
    try:
        fetcher = consumer._fetcher
        idle = IdleFetches(fetcher, busy_ms=10, idle_ms=200, after=5)
        await _until(lambda: fetcher._fetch_max_wait_ms == 200)  # nothing to fetch: five empty fetches
        assert idle.empty >= 5
        await producer.send_and_wait(topic, b"{}", key=b"C-1", partition=1)
        got = await consumer.getmany(timeout_ms=5000)
        assert [r.value for batch in got.values() for r in batch] == [b"{}"]
        assert fetcher._fetch_max_wait_ms == 10
        assert idle.empty == 0
    finally:
        await producer.stop()
        await consumer.stop()
