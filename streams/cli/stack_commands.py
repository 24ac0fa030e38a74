"""``segmenter up``, ``down`` and ``restore``: the embedded stack (a Tansu broker and a Redis on this machine, the
worker, the action worker and the HTTP API), and a backup brought back into a stack.

The embedded broker keeps its topics in memory, so ``down`` first stops the workers (each flushes what it holds),
then writes a backup of the stack into ``DATA_DIR/embedded-backup.tar.gz`` (streams/cli/backup.py), then stops
Redis and the broker; the next ``up`` starts an empty broker and Redis and restores that backup before it starts the
workers (streams/cli/restore.py), so rules, overrides, tags, profiles, customers, the ledger and the erasure log
survive. ``up --fresh`` starts empty; ``down --discard`` keeps nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import time
from pathlib import Path

from pydantic import SecretStr

from streams.cli.backup import write_backup
from streams.cli.common import load_settings
from streams.cli.restore import restore
from streams.kafka.topics import create_topics
from streams.settings import Settings
from streams.stack.embedded import (
    StackError,
    StackInfo,
    port_open,
    redis_password,
    start_broker,
    start_redis,
    started_at,
    stop,
)
from streams.stack.processes import EMBEDDED_ENV, embedded_ports, spawn_worker, wait_ready

SAVED = "embedded-backup.tar.gz"


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings()
    broker_port, redis_port = embedded_ports(settings)
    data_dir = Path(settings.data_dir)
    info_path = data_dir / "stack.json"
    if StackInfo.load(info_path):
        raise StackError(f"a stack is already recorded in {info_path}; run `segmenter down` first")
    # The embedded broker keeps its topics in memory: state a previous `up` left on disk (worker
    # stores, Redis) belongs to topics that no longer exist and would be counted again.
    stale = [data_dir / name for name in ("faust", "faust-actions", "redis") if (data_dir / name).exists()]
    for path in stale:
        shutil.rmtree(path)
    if stale:
        print(f"cleared the previous embedded run's state ({', '.join(str(p) for p in stale)}): the embedded "
              "broker starts empty")
    given = settings.redis_password.get_secret_value() if settings.redis_password else None
    password = redis_password(data_dir, given)
    settings = settings.model_copy(update={"redis_password": SecretStr(password)})
    env = {**EMBEDDED_ENV, "SEGMENTER_REDIS_PASSWORD": password}  # what they connect with
    saved = data_dir / SAVED
    restoring = saved.is_file() and not args.fresh and not args.no_workers
    broker = start_broker(broker_port, data_dir / "logs")
    redis_proc = start_redis(redis_port, data_dir / "redis", password)
    info = StackInfo(broker.pid, broker_port, redis_proc.pid, redis_port)
    info.save(info_path)
    try:
        created = asyncio.run(create_topics(settings))
        print(f"broker 127.0.0.1:{broker_port} (Tansu, memory), redis 127.0.0.1:{redis_port}; "
              f"created {len(created)} topics")
        if args.no_workers:
            print("no workers started (--no-workers): `segmenter restore FILE` starts them once the backup is in")
            return 0
        if restoring:  # what the last `segmenter down` kept
            print(restore(settings, saved)[1])
        worker = start_services(settings, info, info_path, env)
    except BaseException:
        for pid in info.pids():
            stop(pid)
        info_path.unlink(missing_ok=True)
        raise
    if args.detach:
        return 0
    try:
        return worker.wait()
    except KeyboardInterrupt:
        return cmd_down(argparse.Namespace(discard=False))


def start_services(settings: Settings, info: StackInfo, info_path: Path,
                   env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The worker, the action worker and the HTTP API of an embedded stack, each recorded in ``info`` as it starts;
    returns the worker once both workers are ready."""
    data_dir = Path(settings.data_dir)
    worker = spawn_worker(settings, env)
    info.worker_pid = worker.pid
    info.save(info_path)
    actions = spawn_worker(settings, env, role="actions")
    info.actions_pid = actions.pid
    info.save(info_path)
    wait_ready(data_dir, worker)
    wait_ready(data_dir, actions, role="actions")
    print(f"worker ready (pid {worker.pid}), action worker ready (pid {actions.pid}); logs in {data_dir}")
    info.api_pid = _start_api(settings, data_dir, env)
    info.save(info_path)
    return worker


def _start_api(settings: Settings, data_dir: Path, env: dict[str, str]) -> int | None:
    """The HTTP API beside the embedded stack; a warning, not a failure, when its port is taken."""
    if port_open(settings.api_host, settings.api_port):
        print(f"warning: port {settings.api_port} is in use: the HTTP API is not started (set SEGMENTER_API_PORT)")
        return None
    api = spawn_worker(settings, env, role="api")
    deadline = time.monotonic() + 30
    while not port_open(settings.api_host, settings.api_port):
        if api.poll() is not None or time.monotonic() > deadline:
            print(f"warning: the HTTP API did not start; see {data_dir / 'api.log'}")
            return None
        time.sleep(0.2)
    print(f"HTTP API on http://{settings.api_host}:{settings.api_port} (OpenAPI docs at /docs)")
    return api.pid


def cmd_down(args: argparse.Namespace) -> int:
    settings = load_settings()
    info_path = Path(settings.data_dir) / "stack.json"
    info = StackInfo.load(info_path)
    if info is None:
        print(f"nothing to stop: no {info_path}")
        return 0
    ours = [pid for pid in info.pids() if info.ours(pid)]
    left = [pid for pid in info.pids() if pid not in ours and started_at(pid) is not None]
    for pid in (info.api_pid, info.actions_pid, info.worker_pid):  # the workers flush what they hold as they stop
        if pid in ours:
            stop(pid)
    if {info.broker_pid, info.redis_pid, info.worker_pid} <= set(ours) and not args.discard:
        try:  # with workers: a stack started with --no-workers and never restored would keep an empty backup
            print(write_backup(settings, Path(settings.data_dir) / SAVED)
                  + "; the next `segmenter up` restores it (`up --fresh` starts empty)")
        except Exception as exc:  # the stack still stops; what the last backup kept stays
            print(f"error: the stack's data could not be kept ({exc}); the previous backup, if any, stays")
    for pid in (info.redis_pid, info.broker_pid):
        if pid in ours:
            stop(pid)
    info_path.unlink(missing_ok=True)
    for pid in left:
        print(f"left process {pid} alone: it is not the one `segmenter up` started (its id was given to another "
              "program since)")
    for role in ("worker", "actions"):
        (Path(settings.data_dir) / f"{role}.ready").unlink(missing_ok=True)
    print("stopped the HTTP API, action worker, worker, redis and broker")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings = load_settings()
    info, said = restore(settings, Path(args.file))
    print(said)
    if info is not None:  # the embedded stack, started with --no-workers
        start_services(settings, info, Path(settings.data_dir) / "stack.json", dict(EMBEDDED_ENV))
    else:
        print("start the workers now (or restart them) so they open on the restored state")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("up", help="start the embedded broker, Redis, the workers and the API; restore what the last "
                                  "`down` kept")
    p.add_argument("--detach", action="store_true", help="return once everything is ready")
    p.add_argument("--fresh", action="store_true", help="start empty, not from what the last `down` kept")
    p.add_argument("--no-workers", action="store_true",
                   help="the broker, Redis and topics only (then `segmenter restore FILE`, which starts the workers)")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("down", help="stop what `up` started, keeping its data for the next `up`")
    p.add_argument("--discard", action="store_true", help="keep nothing: the next `up` starts empty")
    p.set_defaults(func=cmd_down)
    p = sub.add_parser("restore", help="bring a backup back into an empty stack (`segmenter up --no-workers` first "
                                       "for the embedded one: restore then starts the workers)")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_restore)
