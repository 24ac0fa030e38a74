"""The action worker's faust app: ``create_actions_app(settings)`` builds it (see ``streams.actions.actor``)."""

from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path
from typing import Any

import faust

from streams import collector
from streams.actions import metrics
from streams.actions.actor import Actor
from streams.kafka import faust_compat
from streams.kafka.runner import run_faust
from streams.kafka.security import faust_credentials
from streams.kafka.topics import create_topics
from streams.logs import logging_config
from streams.names import Names
from streams.probes import Probe, write_ready
from streams.readmodel.retry import RETRIES
from streams.settings import Settings


def create_actions_app(settings: Settings) -> faust.App:
    names = Names(settings.topic_prefix)
    n = settings.partitions
    data_dir = Path(settings.data_dir).resolve()
    (data_dir / "faust-actions").mkdir(parents=True, exist_ok=True)  # a fresh node: nothing there yet
    scheme = faust_compat.register(settings.fetch_max_wait_ms, fetch_idle_wait_ms=settings.fetch_idle_wait_ms)
    app = faust.App(
        names.actions_app_id,
        broker=[f"{scheme}://{server}" for server in settings.kafka_bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        table_standby_replicas=settings.standby_replicas,
        store="rocksdb://", datadir=str(data_dir / "faust-actions"), autodiscover=False, web_enabled=False,
        topic_partitions=n, topic_allow_declare=False, broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.session_timeout_s, broker_heartbeat_interval=1.0,
        consumer_group_instance_id=settings.instance_id,
        recovery_consistency_check=settings.consistency_check, producer_linger=0.005, stream_wait_empty=False,
    )
    source = app.topic(names.segment_changes, names.control, partitions=n, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    ledger = app.Table(names.ledger_table, partitions=n, key_type=bytes, value_type=bytes)
    actor = Actor(app, settings, names, ledger)
    faust_compat.install(app, actor)  # whole fetched batches to actor.take, as the worker's engine takes its input

    async def never(stream: faust.StreamT[Any]) -> None:
        # This agent only makes faust subscribe to the topics: the actor takes their records first.
        async for event in stream.events():
            raise RuntimeError(f"{event.message.topic} record reached faust's stream path: the segmenter "
                               "fast path is not installed (faust_compat out of date with faust?)")

    app.agent(source, name=names.actions_agent, concurrency=1)(never)

    async def on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        actor.forget(revoked)

    app.on_partitions_revoked.connect(on_revoked)
    probe = Probe()
    if settings.metrics_port:
        metrics.serve(actor.stats, probe, settings.metrics_host, settings.metrics_port)
    ready_file = data_dir / "actions.ready"

    async def readiness() -> None:
        ready = app.tables.recovery.completed.is_set() and bool(app.assignor.assigned_actives())
        probe.update(ready)
        if ready:  # also this worker's counters, for tests and the curious
            write_ready(ready_file, {"pid": os.getpid(), "stats": dict(actor.stats), "gc_automatic": gc.isenabled(),
                                     **RETRIES})
        elif ready_file.exists():
            ready_file.unlink(missing_ok=True)

    app.timer(0.5, name="segmenter.actions.readiness")(readiness)

    async def watchdog() -> None:
        actor.watchdog()

    app.timer(5.0, name="segmenter.actions.watchdog")(watchdog)

    async def cleanup(*_: Any, **__: Any) -> None:
        ready_file.unlink(missing_ok=True)
        await actor.close()

    app.on_before_shutdown.connect(cleanup)
    app.actor = actor  # type: ignore[assignment,method-assign]  # tests reach the actor here
    return app


def run_actions(settings: Settings, loglevel: str = "warn") -> None:
    """Run one action worker in the foreground until SIGINT/SIGTERM."""
    (Path(settings.data_dir) / "actions.ready").unlink(missing_ok=True)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    asyncio.run(create_topics(settings))
    app = create_actions_app(settings)
    collector.take_over()  # as the worker: what start-up built frozen, collection at each batch's end (Actor.take)
    run_faust(app, loglevel, logging_config(loglevel, settings.log_level, settings.log_format))
