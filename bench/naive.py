"""The baseline ``make bench`` compares against: the obvious faust design of the same job.

One faust agent, one event at a time: validate, the same core step, one table write per event (a
changelog record each), one segment-change send per change. No Redis projection and no time-driven
wake-ups (both would only slow it further). It writes how many events it has processed to
``DATA_DIR/naive.count`` every half second; the bench divides by the time.

Run: ``python -m bench.naive`` with the same ``SEGMENTER_*`` variables as a worker.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import faust
import orjson

from schemas.events import TRANSACTION_ADAPTER
from segmenter import step
from segmenter.facts import fact_of_transaction
from segmenter.rules import load_ruleset
from streams.kafka import faust_compat
from streams.names import RAW, Names
from streams.settings import Settings
from streams.stored import pack, unpack

ROOT = Path(__file__).resolve().parent.parent


def create_naive_app(settings: Settings) -> faust.App:
    names = Names(settings.topic_prefix)
    data_dir = Path(settings.data_dir).resolve()
    scheme = faust_compat.register(settings.fetch_max_wait_ms)
    app = faust.App(
        f"{settings.topic_prefix}naive", broker=f"{scheme}://{settings.kafka_bootstrap}", store="rocksdb://",
        datadir=str(data_dir / "faust"), autodiscover=False, web_enabled=False, web_bind="127.0.0.1",
        web_port=settings.web_port, topic_partitions=settings.partitions, topic_allow_declare=True,
        broker_session_timeout=settings.session_timeout_s, broker_rebalance_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0, recovery_consistency_check=settings.consistency_check,
        producer_linger=0.005, stream_wait_empty=False)
    policy = settings.policy()
    ruleset = load_ruleset((ROOT / "examples/rules/retail-value.yaml").read_text(), "retail-value.yaml",
                           policy.money_scale)
    table = app.Table("naive-customers", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    changes = app.topic(f"{settings.topic_prefix}naive-changes", partitions=settings.partitions, **RAW)
    days: dict[int, int] = {}
    count = {"n": 0}
    count_file = data_dir / "naive.count"

    async def process(stream: faust.Stream) -> None:
        async for event in stream.events():
            tx = TRANSACTION_ADAPTER.validate_json(event.value)
            fact = fact_of_transaction(tx, policy)
            partition = event.message.partition
            day = days[partition] = max(days.get(partition, 0), fact.day)
            value = table.get(event.message.key)
            record = step.CustomerRecord() if value is None else unpack(value)
            new, found, _ = step.on_fact(record, fact, event_id=tx.event_id, now_day=day, ruleset=ruleset,
                                         policy=policy)
            table[event.message.key] = pack(partition, new)
            for change in found:
                await changes.send(key=event.message.key, value=orjson.dumps({
                    "change_id": change.change_id(tx.customer_id, new.ruleset), "customer_id": tx.customer_id,
                    "dimension": change.dimension, "from": change.before, "to": change.after,
                    "stream_time": datetime.fromordinal(day).isoformat()}))
            count["n"] += 1

    app.agent(app.topic(names.transactions, **RAW), name="naive.events", concurrency=1)(process)

    async def report() -> None:
        count_file.write_text(str(count["n"]))

    app.timer(0.5, name="naive.report")(report)
    return app


def main() -> None:
    from faust.worker import Worker  # noqa: PLC0415

    settings = Settings()
    Worker(create_naive_app(settings), loglevel=os.environ.get("BENCH_LOGLEVEL", "warn"), quiet=True,
           redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
