"""The segmenter worker's faust app: ``create_app(settings)`` builds it; nothing is registered at import time."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson

from streams import collector, compiled
from streams.kafka import faust_compat
from streams.kafka.runner import run_faust
from streams.kafka.security import faust_credentials
from streams.kafka.topics import create_topics
from streams.logs import logging_config
from streams.names import RAW, Names
from streams.probes import Probe, write_ready
from streams.readmodel.retry import RETRIES
from streams.settings import Settings
from streams.worker.engine import Engine
from streams.worker.metrics import read_lag

log = logging.getLogger("segmenter.worker")


def create_app(settings: Settings) -> faust.App:
    names = Names(settings.topic_prefix)
    n = settings.partitions
    data_dir = Path(settings.data_dir).resolve()
    (data_dir / "faust").mkdir(parents=True, exist_ok=True)  # a fresh node: nothing there yet
    scheme = faust_compat.register(settings.fetch_max_wait_ms, settings.store_compression,
                                   fetch_idle_wait_ms=settings.fetch_idle_wait_ms)
    app = faust.App(
        names.app_id,
        broker=[f"{scheme}://{server}" for server in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        table_standby_replicas=settings.standby_replicas,
        store=f"{faust_compat.STORE_SCHEME}://",  # RocksDB, zstd-compressed (see faust_compat)
        datadir=str(data_dir / "faust"),
        autodiscover=False,
        web_enabled=False,
        web_bind="127.0.0.1",
        web_port=settings.web_port,
        topic_partitions=n,
        topic_allow_declare=False,  # topics are created explicitly, with their partition counts
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=1.0,
        consumer_group_instance_id=settings.instance_id,
        recovery_consistency_check=settings.consistency_check,
        producer_linger=0.005,
        stream_wait_empty=False,
        broker_max_poll_records=settings.max_poll_records,
    )
    inputs = app.topic(*names.inputs, partitions=n, **RAW)
    tables = {name: app.Table(name, partitions=n, key_type=bytes, value_type=bytes)
              for name in (names.customers_table, names.partitions_table)}
    engine = Engine(app, settings, names, tables)
    faust_compat.install(app, engine)

    async def never(stream: faust.StreamT[Any]) -> None:
        # This agent only makes faust subscribe to the inputs: the engine takes their records first.
        async for event in stream.events():
            raise RuntimeError(f"{event.message.topic} record reached faust's stream path: the segmenter "
                               "fast path is not installed (faust_compat out of date with faust?)")

    app.agent(inputs, name=names.events_agent, concurrency=1)(never)

    async def on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        await engine.on_revoked(revoked)

    app.on_partitions_revoked.connect(on_revoked)

    async def clock() -> None:
        await tick_partitions(engine, settings, names)

    if settings.clock == "wall":
        app.timer(settings.tick_interval_s, on_leader=True, name=names.clock_timer)(clock)

    app.timer(min(settings.flush_interval_s, 1.0), name="segmenter.flush")(engine.tick)
    app.timer(settings.population_interval_s, name="segmenter.population")(engine.population_round)
    probe = Probe()
    _serve_metrics(app, engine, settings, names, probe)

    ready_file = data_dir / "worker.ready"

    async def readiness() -> None:
        ready = app.tables.recovery.completed.is_set() and bool(app.assignor.assigned_actives())
        probe.update(ready)
        if ready:  # with what a test or an operator may poll: Redis calls retried
            first = not ready_file.exists()
            write_ready(ready_file, {"pid": os.getpid(), "gc_automatic": gc.isenabled(), **RETRIES})
            if first:
                log.info("worker ready: %d partitions assigned; hot path: %s",
                         len(app.assignor.assigned_actives()), compiled.install())
        elif ready_file.exists():
            ready_file.unlink(missing_ok=True)

    app.timer(0.5, name="segmenter.readiness")(readiness)

    app.timer(5.0, name="segmenter.counters")(engine.publish_counters)

    async def cleanup(*_: Any, **__: Any) -> None:
        ready_file.unlink(missing_ok=True)
        await engine.close()

    app.on_before_shutdown.connect(cleanup)
    return app


async def tick_partitions(engine: Engine, settings: Settings, names: Names) -> None:
    """The wall clock, into every partition through the control topic (in order with events)."""
    producer = await engine.producer()  # the engine's one producer
    value = orjson.dumps({"type": "tick", "to": datetime.now(UTC).isoformat()})
    for partition in range(settings.partitions):
        await producer.send(names.control, key=b"tick", value=value, partition=partition)


def _serve_metrics(app: faust.App, engine: Engine, settings: Settings, names: Names, probe: Probe) -> None:
    """Prometheus metrics and the probes, and a timer reading the group's lag for them, when SEGMENTER_METRICS_PORT
    is set."""
    metrics = engine.metrics
    if metrics is None:
        return
    metrics.serve(engine, probe, settings.metrics_host, settings.metrics_port)

    async def lag() -> None:
        await read_lag(metrics, settings, names.app_id, engine.topics)

    app.timer(5.0, name="segmenter.lag")(lag)


def run_worker(settings: Settings, loglevel: str = "warn") -> None:
    """Run one worker in the foreground until SIGINT/SIGTERM."""
    if settings.malloc_arenas:
        collector.limit_malloc_arenas(settings.malloc_arenas)  # before RocksDB's and the event loop's threads exist
    compiled.install()  # before faust imports the hot path's modules; logged with the worker's readiness
    (Path(settings.data_dir) / "worker.ready").unlink(missing_ok=True)
    created = asyncio.run(create_topics(settings))
    if created:
        log.info("created topics: %s", ", ".join(created))
    app = create_app(settings)
    collector.take_over()  # see streams/collector.py
    run_faust(app, loglevel, logging_config(loglevel, settings.log_level, settings.log_format))
