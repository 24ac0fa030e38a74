"""Fails loudly when a faust upgrade moves what streams/faust_compat.py relies on."""

import inspect

import faust
from faust.tables import recovery
from faust.transport import drivers
from faust.transport.drivers import aiokafka as driver

from streams import faust_compat
from streams.settings import Settings
from streams.worker import create_app


def test_faust_version_is_the_one_we_checked():
    assert faust.__version__ == "0.15.3", "re-check streams/faust_compat.py against this faust release"


def test_the_consumer_thread_still_has_the_hooks_we_override():
    assert "_highwaters" in vars(driver.AIOKafkaConsumerThread)
    assert "_new_consumer_thread" in vars(driver.Consumer)
    assert list(inspect.signature(driver.AIOKafkaConsumerThread._highwaters).parameters) == ["self", "partitions"]


def test_the_worker_consumer_is_still_built_by_the_hook_we_wrap():
    source = inspect.getsource(driver.AIOKafkaConsumerThread._create_worker_consumer)
    assert "fetch_max_wait_ms=1500" in source
    assert "_fetch_max_wait_ms" in inspect.getsource(__import__("aiokafka").AIOKafkaConsumer.start)


def test_recovery_still_asks_the_consumer_for_highwaters():
    assert "consumer.highwaters(" in inspect.getsource(recovery.Recovery._build_highwaters)


def test_our_scheme_resolves_to_our_transport():
    scheme = faust_compat.register()
    assert drivers.by_url(f"{scheme}://127.0.0.1:9092") is faust_compat.Transport
    assert faust_compat.Transport.Consumer is faust_compat.Consumer


def test_worker_tables_store_and_log_our_bytes_untouched(tmp_path):
    app = create_app(Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1"))
    for table in app.tables.values():
        assert (table.key_serializer, table.value_serializer) == ("raw", "raw")
        assert table.changelog_topic.value_serializer == "raw"
