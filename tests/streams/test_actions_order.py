"""The action worker decides a fetch's ticks after its segment changes (``streams.actions.actor.ticks_last``)."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.actions.actor import ticks_last


def test_a_fetch_s_control_partitions_come_after_its_segment_changes_and_the_rest_keeps_its_order():
    tick, rules = TopicPartition("p.control", 0), TopicPartition("p.control", 1)
    changes = [TopicPartition("p.segment-changes", n) for n in (2, 0, 1)]
    batch = {tick: ["t"], changes[0]: ["a"], rules: ["r"], changes[1]: ["b"], changes[2]: ["c"]}
    assert ticks_last(batch, "p.control") == [(changes[0], ["a"]), (changes[1], ["b"]), (changes[2], ["c"]),
                                              (tick, ["t"]), (rules, ["r"])]


def test_a_fetch_of_one_topic_is_taken_as_fetched():
    batch = {TopicPartition("p.control", n): [n] for n in (3, 1, 2)}
    assert [tp.partition for tp, _ in ticks_last(batch, "p.control")] == [3, 1, 2]
