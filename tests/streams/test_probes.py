"""The probes on the metrics port (streams/probes.py) and the JSON log format (streams/logs.py)."""

import logging

import orjson
from prometheus_client import CollectorRegistry

from streams import probes
from streams.logs import JsonFormatter


def test_probes_say_not_ready_before_partitions_and_not_live_once_the_loop_stopped(monkeypatch):
    probe = probes.Probe()
    app = probes.app_of(CollectorRegistry(), probe)
    status: list[str] = []

    def answer(path: str) -> str:
        body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h: status.append(s)))
        return f"{status[-1][:3]} {body.decode().strip()}"

    assert answer("/live") == "200 ok"
    assert answer("/ready") == "503 not ok"
    probe.update(True)
    assert answer("/ready") == "200 ok"
    monkeypatch.setattr(probes.time, "monotonic", lambda: probe.beat + probes.STALE_S + 1)
    assert answer("/live") == "503 not ok"
    assert answer("/ready") == "503 not ok"


def test_a_json_log_line_is_one_object_with_its_traceback():
    error = ValueError("bad\nthing")
    record = logging.LogRecord("segmenter.worker", logging.ERROR, "x.py", 1, "failed: %s", ("a\nb",),
                               exc_info=(ValueError, error, None))
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = orjson.loads(line)
    assert (doc["level"], doc["logger"], doc["message"]) == ("ERROR", "segmenter.worker", "failed: a\nb")
    assert "ValueError: bad" in doc["exc"]
