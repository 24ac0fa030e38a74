"""A real Kafka-protocol broker (Tansu) and a real Redis, started by the test session itself."""

from __future__ import annotations

import itertools
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.cli.main import main
from streams.settings import Settings
from streams.stack.embedded import free_port, start_broker, start_redis, stop
from streams.stack.processes import spawn_worker, wait_ready


@dataclass(frozen=True)
class Stack:
    broker_port: int
    redis_port: int


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    broker_port, redis_port = free_port(), free_port()
    broker = start_broker(broker_port, root / "logs")
    redis_proc = start_redis(redis_port, root / "redis")
    yield Stack(broker_port, redis_port)
    stop(redis_proc.pid)
    stop(broker.pid)


_counter = itertools.count()


@dataclass
class System:
    """One test's isolated slice of the stack: own topic prefix, consumer group, Redis db, data dir."""

    env: dict[str, str]
    data_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return Settings(**{k.removeprefix("SEGMENTER_").lower(): v for k, v in self.env.items()})

    def run(self, *args: str) -> int:
        return main(list(args))

    def start_worker(self, data_dir: Path | None = None, role: str = "worker", wait: bool = True,
                     **extra: str) -> subprocess.Popen[bytes]:
        """``extra``: more settings for this worker only, e.g. ``failpoint="mid-batch:500"``; ``role``
        actions starts an action worker (its data dir defaults to the worker's)."""
        env = {**self.env, **{f"SEGMENTER_{k.upper()}": v for k, v in extra.items()}}
        if data_dir is not None:
            env["SEGMENTER_DATA_DIR"] = str(data_dir)
        settings = Settings(**{k.removeprefix("SEGMENTER_").lower(): v for k, v in env.items()})
        worker = spawn_worker(settings, env, role=role)
        self.workers.append(worker)
        if wait:
            wait_ready(Path(settings.data_dir), worker, timeout_s=120, role=role)
        return worker

    def start_actions(self, **extra: str) -> subprocess.Popen[bytes]:
        return self.start_worker(role="actions", **extra)

    def kill_worker(self, worker: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        worker.send_signal(sig)
        worker.wait(timeout=60)


@pytest.fixture
def system(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[System]:
    n = next(_counter)
    env = {
        "SEGMENTER_KAFKA_BOOTSTRAP": f"127.0.0.1:{stack.broker_port}",
        "SEGMENTER_REDIS_URL": f"redis://127.0.0.1:{stack.redis_port}/{n % 16}",
        "SEGMENTER_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}.",
        "SEGMENTER_DATA_DIR": str(tmp_path / "worker"),
        "SEGMENTER_CLOCK": "event",
        "SEGMENTER_PARTITIONS": "4",
        "SEGMENTER_CONSISTENCY_CHECK": "false",
        # Group joins on the embedded broker take about half the session timeout, and a killed member's partitions
        # move after it: 4 s (the default is 6) keeps the suite within its time with these small loads.
        "SEGMENTER_SESSION_TIMEOUT_S": "4",
        "SEGMENTER_WEB_PORT": str(free_port()),
        "SEGMENTER_ERASURE_KEY": f"test-erasure-key-{n:04d}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sys_ = System(env, tmp_path / "worker")
    yield sys_
    for worker in sys_.workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
