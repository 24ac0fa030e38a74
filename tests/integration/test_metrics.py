"""A running worker's Prometheus metrics, scraped over HTTP: events per topic, dead letters per reason, changes
per dimension and cause, due index, freshness, consumer lag, latency and flush histograms."""

from __future__ import annotations

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from streams.names import Names
from streams.stack.embedded import free_port
from tests.integration.helpers import RETAIL, produce, wait_until

TX = """customer_id,occurred_at,amount,kind,event_id
A,2026-06-01,100,,a1
B,2026-06-02,200,,b1
A,2026-06-03,50,,a2
"""


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_running_worker_is_scraped(system, tmp_path):
    port = free_port()
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker(metrics_port=str(port))
    (tmp_path / "tx.csv").write_text(TX)
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    names = Names(system.settings.topic_prefix)
    produce(system.settings, names.transactions, [(b"Z", b"{ not json")])
    assert system.run("tick", "--to", "2026-06-30") == 0
    assert system.run("wait", "--timeout", "120") == 0
    got = wait_until(lambda: _scrape(port), lambda m: any(k[0] == "segmenter_consumer_lag" for k in m), 30,
                     "the consumer lag read")
    assert got["segmenter_events_total", (("topic", names.transactions),)] == 4
    assert got["segmenter_event_outcomes_total", (("outcome", "applied"),)] == 3
    assert got["segmenter_dead_letters_total", (("reason", "bad_input"),)] == 1
    assert got["segmenter_changes_total", (("cause", "event"), ("kind", "segment"), ("name", "value"))] == 2
    assert sum(v for (name, labels), v in got.items() if name == "segmenter_due_customers") == 2
    assert all(v >= 0 for (name, _), v in got.items() if name == "segmenter_stream_time_behind_seconds")
    assert got["segmenter_processing_latency_seconds_count", ()] >= 1
    assert got["segmenter_flush_duration_seconds_count", ()] >= 1
    lags = {labels: v for (name, labels), v in got.items() if name == "segmenter_consumer_lag"}
    assert lags
    assert all(v == 0 for v in lags.values())

    # an action worker's: the alert of entering high_value, issued once
    actions_port = free_port()
    system.start_actions(data_dir=tmp_path / "actions", actions_replay_horizon="0d", metrics_port=str(actions_port))
    assert system.run("override", "set", "A", "value", "high_value", "--reason", "key account") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    issued = wait_until(lambda: _scrape(actions_port).get(("segmenter_actions_total", (("action", "alert"),
                                                                                       ("outcome", "issued")))),
                        bool, 30, "the alert counted")
    assert issued == 1
    for probed in (port, actions_port):  # a Kubernetes probe's answers
        assert httpx.get(f"http://127.0.0.1:{probed}/live", timeout=10).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{probed}/ready", timeout=10).text == "ok\n"



def test_with_the_json_log_format_every_line_is_one_json_object(system, tmp_path):
    system.start_worker(data_dir=tmp_path / "j", log_format="json")
    lines = [line for line in (tmp_path / "j" / "worker.log").read_text().splitlines() if line.strip()]
    docs = [orjson.loads(line) for line in lines]
    assert any(d["message"].startswith("worker ready") and d["level"] == "INFO" for d in docs), lines[-5:]
    assert all({"ts", "level", "logger", "message", "process"} <= d.keys() for d in docs)
