"""The readers a waiter polls with (``EndReader``, ``LagReader``) keep their clients between reads, against the
embedded broker: what is produced between two reads shows in the second, and a group's commit in its lag."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from streams.kafka.lag import LagReader
from streams.kafka.reading import EndReader, true_ends
from streams.kafka.security import kafka_options
from streams.kafka.topics import create_topics
from streams.names import Names


async def test_reads_again_with_the_same_clients_see_what_was_produced_and_committed_since(system):
    settings = system.settings
    await create_topics(settings)
    topic = Names(settings.topic_prefix).transactions
    tp = TopicPartition(topic, 2)
    producer = AIOKafkaProducer(**kafka_options(settings))
    await producer.start()
    group = "test-end-reader"
    committer = AIOKafkaConsumer(**kafka_options(settings), group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        async with EndReader(settings) as ends, LagReader(settings) as lags:
            before = await ends.ends([topic])
            assert before == await true_ends(settings, [topic])
            for n in range(3):  # three batches of their own
                await producer.send_and_wait(topic, b"{}", key=f"C-{n}".encode(), partition=2)
            after = await ends.ends([topic])
            assert after[tp] == before[tp] + 3
            assert {t: e for t, e in after.items() if t != tp} == {t: e for t, e in before.items() if t != tp}
            lag = {x.tp: x.lag for x in await lags.read({group: (topic,)})}
            assert lag[tp] == after[tp]  # nothing committed yet
            committer.assign([tp])
            await committer.commit({tp: OffsetAndMetadata(after[tp] - 1, "")})
            lag = {x.tp: x.lag for x in await lags.read({group: (topic,)})}
            assert lag[tp] == 1
    finally:
        await committer.stop()
        await producer.stop()
