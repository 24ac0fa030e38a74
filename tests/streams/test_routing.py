"""The partition each record belongs on (streams/worker/routing.py): murmur2 of its customer id, as the producers'
default partitioner and the CLI's own records put it."""

from types import SimpleNamespace

from streams.kafka.topics import customer_partition
from streams.names import Names, customer_key
from streams.settings import Settings
from streams.worker.routing import MEMO, Router

SETTINGS = Settings(partitions=8)
NAMES = Names(SETTINGS.topic_prefix)


def test_a_customers_partition_is_the_one_the_cli_and_aiokafka_give_it_and_its_records_share_it():
    router = Router(SETTINGS, NAMES)
    for customer in ("C1", "C-1001", "客户甲", "x" * 256):
        right = customer_partition(SETTINGS, customer)
        assert router.partition_of(customer.encode()) == right
        assert router.partition_of(customer_key(customer, "value")) == right  # an override's key
        assert router.partition_of(customer_key(customer, "vip:gold")) == right  # a manual tag's key


def test_only_records_elsewhere_are_misplaced_and_rerouted_ones_are_queued_for_their_partition():
    router = Router(SETTINGS, NAMES)
    right = customer_partition(SETTINGS, "C1")
    record = SimpleNamespace(key=b"C1", value=b"{}", offset=7)
    here, there = SimpleNamespace(topic=NAMES.transactions, partition=right), \
        SimpleNamespace(topic=NAMES.transactions, partition=(right + 1) % 8)
    assert router.misplaced(here, record) is None
    assert router.misplaced(there, record) == right
    assert router.misplaced(there, SimpleNamespace(key=None, value=b"{}", offset=8)) is None  # the edge refuses it
    router.found(there, record, right)
    assert router.take_pending() == {(NAMES.transactions, right): [record]}
    assert router.count == {NAMES.transactions: 1}
    assert router.take_pending() == {}


def test_with_dead_letter_set_nothing_is_queued():
    router = Router(SETTINGS.model_copy(update={"wrong_partition": "dead-letter"}), NAMES)
    router.found(SimpleNamespace(topic=NAMES.interactions, partition=0), SimpleNamespace(key=b"C1", offset=1), 3)
    assert router.take_pending() == {}
    assert router.count[NAMES.interactions] == 1


def test_the_memo_stays_bounded():
    router = Router(SETTINGS, NAMES)
    for n in range(MEMO + 10):
        router.partition_of(f"C{n}".encode())
    assert len(router._memo) <= MEMO
