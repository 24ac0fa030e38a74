"""The metrics port of a worker or action worker (``SEGMENTER_METRICS_PORT``): ``/metrics`` for Prometheus, and two
probes a Kubernetes ``livenessProbe`` and ``readinessProbe`` can ask:

- ``/live``: 200 while the process's event loop has turned within ``STALE_S`` (its readiness timer beats every half
  second); 503 once it has not: a hung loop, which a restart cures.
- ``/ready``: 200 once the process has recovered its tables and holds partitions; 503 before, or after it lost them.

Served by a thread of its own (the official client's WSGI app behind a small router), so a busy loop cannot stop
the probes from answering that it is busy.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

STALE_S = 30.0


@dataclass
class Probe:
    """What the probes answer from: set by the process's readiness timer."""

    ready: bool = False
    beat: float = field(default_factory=time.monotonic)

    def update(self, ready: bool) -> None:
        self.ready, self.beat = ready, time.monotonic()

    def live(self) -> bool:
        return time.monotonic() - self.beat < STALE_S


_WRITTEN: dict[Path, bytes] = {}  # what this process last wrote to each readiness file


def write_ready(path: Path, doc: dict[str, Any]) -> None:
    """The readiness file a process refreshes while it is ready (its pid and counters): written when what it says
    changed (or the file went), aside and renamed, so a reader never sees it half written."""
    value = orjson.dumps(doc)
    if _WRITTEN.get(path) == value and path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    aside.write_bytes(value)
    os.replace(aside, path)
    _WRITTEN[path] = value


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, *_: Any) -> None:  # a scrape every few seconds is not news
        pass


def app_of(registry: CollectorRegistry, probe: Probe) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def route(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/live", "/ready"):
            ok = probe.live() if path == "/live" else probe.ready and probe.live()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"not ok\n"]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return route


def serve(registry: CollectorRegistry, probe: Probe, host: str, port: int) -> None:
    """``/metrics``, ``/live`` and ``/ready`` on ``host:port``, from a daemon thread."""
    server = make_server(host, port, app_of(registry, probe), _Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="segmenter-metrics", daemon=True).start()
