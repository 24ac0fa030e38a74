"""Worker processes of the embedded stack: spawn one with its log file, wait until it says it is ready."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from streams.settings import Settings
from streams.stack.embedded import StackError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def embedded_ports(settings: Settings) -> tuple[int, int]:
    """The broker's and Redis's ports for `segmenter up`, which starts both on this machine."""
    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    redis_url = urlparse(settings.redis_url)
    if host not in LOOPBACK or (redis_url.hostname or "") not in LOOPBACK:
        raise StackError("`segmenter up` starts a local broker and Redis; SEGMENTER_KAFKA_BOOTSTRAP and "
                         "SEGMENTER_REDIS_URL must point at 127.0.0.1 (use `segmenter worker` otherwise)")
    return int(port), int(redis_url.port or 6379)


def wait_ready(data_dir: Path, process: subprocess.Popen[bytes], timeout_s: float = 90.0,
               role: str = "worker") -> None:
    """Until ``role`` (worker or actions) wrote its ready file; a clear error if it died or took too long."""
    ready = data_dir / f"{role}.ready"
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if process.poll() is not None:
            raise StackError(f"the {role} worker exited with code {process.returncode}; see "
                             f"{data_dir / f'{role}.log'}")
        if time.monotonic() > deadline:
            raise StackError(f"the {role} worker was not ready within {timeout_s:.0f}s; see "
                             f"{data_dir / f'{role}.log'}")
        time.sleep(0.2)


# What workers on the embedded broker need (see ../shared/EMBEDDED-BROKER.md: its ListOffsets answer
# under-reports a partition's end, which faust's recovery check would take for data loss).
EMBEDDED_ENV = {"SEGMENTER_CONSISTENCY_CHECK": "false"}


def spawn_worker(settings: Settings, extra_env: dict[str, str] | None = None,
                 role: str = "worker") -> subprocess.Popen[bytes]:
    """A segmenter worker (``role`` worker), an action worker (``role`` actions) or the HTTP API (``role`` api),
    logging to DATA_DIR/ROLE.log."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(extra_env or {})}
    if settings.redis_password is not None:  # the embedded Redis's own, when the CLI found it
        env.setdefault("SEGMENTER_REDIS_PASSWORD", settings.redis_password.get_secret_value())
    if role not in ("worker", "actions", "api"):
        raise ValueError(f"unknown worker role {role!r}")
    return subprocess.Popen(  # noqa: S603 - our own module, a role checked above
        [sys.executable, "-m", "streams.cli", role], env=env,
        stdout=(data_dir / f"{role}.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
