"""Operator commands against the real broker and Redis."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import pytest
import redis

from streams.cli.common import load_settings
from streams.cli.main import main
from streams.names import Names
from streams.stack.embedded import StackInfo, free_port, port_open, stop
from tests.integration.helpers import RETAIL, consume_all, read_csv

pytestmark = pytest.mark.integration

TX = """customer_id,occurred_at,amount,kind,event_id
A1,2026-06-01T10:00:00Z,100.00,,a
A1,2026-06-02T10:00:00Z,50.00,,b
B2,2026-05-01T10:00:00Z,20000.00,,c
B2,,1.00,,d
"""


def test_up_then_down_start_and_stop_the_embedded_stack(tmp_path, monkeypatch, capsys):
    broker, redis_port = free_port(), free_port()
    monkeypatch.setenv("SEGMENTER_KAFKA_BOOTSTRAP", f"127.0.0.1:{broker}")
    monkeypatch.setenv("SEGMENTER_REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")
    monkeypatch.setenv("SEGMENTER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SEGMENTER_WEB_PORT", str(free_port()))
    try:
        assert main(["up", "--detach"]) == 0
        info = StackInfo.load(tmp_path / "var" / "stack.json")
        assert info is not None
        assert port_open("127.0.0.1", broker)
        assert port_open("127.0.0.1", redis_port)
        assert main(["up", "--detach"]) == 1  # refuses to start a second stack over the first
        assert "already recorded" in capsys.readouterr().err
        assert main(["rules", "show"]) == 1
        assert main(["rules", "apply", str(RETAIL)]) == 0
        capsys.readouterr()
        assert main(["rules", "show"]) == 0
        assert capsys.readouterr().out == "retail-value v1: value; 2 action(s)\n"
        # The embedded Redis wants the password `up` made, kept for its owner alone; the CLI finds it
        password = tmp_path / "var" / "redis.password"
        assert stat.S_IMODE(password.stat().st_mode) == 0o600
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=redis_port).ping()
        assert redis.Redis(port=redis_port, password=password.read_text()).ping()
        assert main(["report"]) == 0
        # A recorded process id now held by another program (a reused id) is left alone by `down`
        stranger = subprocess.Popen(["sleep", "60"])
        info = StackInfo.load(tmp_path / "var" / "stack.json")
        assert info is not None
        api_pid, info.api_pid = info.api_pid, stranger.pid
        info.started[str(stranger.pid)] = time.time() - 3600  # what `up` recorded for its own process
        info.save(tmp_path / "var" / "stack.json")
        capsys.readouterr()
    finally:
        assert main(["down"]) == 0
    assert f"left process {stranger.pid} alone" in capsys.readouterr().out
    assert stranger.poll() is None
    stranger.kill()
    stranger.wait()
    stop(api_pid)
    assert not port_open("127.0.0.1", broker)
    assert not port_open("127.0.0.1", redis_port)
    assert not (tmp_path / "var" / "stack.json").exists()


def test_wait_fails_at_the_timeout_saying_how_far_behind(system, tmp_path, capsys):
    tx = tmp_path / "tx.csv"
    tx.write_text(TX.replace("B2,,1.00,,d\n", ""))
    assert system.run("import", "transactions", str(tx), "--quiet") == 0
    assert system.run("wait", "--timeout", "1") == 1  # no worker is running
    assert "not caught up after 1s: 3 records pending" in capsys.readouterr().err


def test_import_customer_report_lag_and_reimport(system, tmp_path, capsys):
    tx = tmp_path / "tx.csv"
    tx.write_text(TX)
    system.start_worker()
    assert system.run("rules", "apply", str(RETAIL)) == 0
    assert system.run("import", "transactions", str(tx), "--quiet") == 1  # one bad row
    assert "tx.csv:5: skipped: occurred_at is missing" in capsys.readouterr().err
    assert system.run("tick", "--to", "2026-06-30") == 0
    assert system.run("wait", "--timeout", "120") == 0
    capsys.readouterr()

    assert system.run("customer", "A1") == 0
    out = capsys.readouterr().out
    assert "value: low_value" in out
    assert "amount_12m                   150.00" in out
    assert system.run("customer", "nobody") == 1
    assert "customer 'nobody' is not known" in capsys.readouterr().err

    assert system.run("report") == 0
    report = capsys.readouterr().out
    assert "low_value" in report
    assert "unclassified" in report  # B2: one big purchase is a gap of the retail table

    assert system.run("lag") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    worker_group = Names(system.settings.topic_prefix).app_id
    assert [row for row in rows if row[0] == worker_group]
    assert all(row[-1] == "0" for row in rows if row[0] == worker_group)  # no action worker runs here

    changes_before = len(consume_all(system.settings, Names(system.settings.topic_prefix).segment_changes))
    export_before = tmp_path / "before.csv"
    assert system.run("export", "--out", str(export_before)) == 0
    assert system.run("import", "transactions", str(tx), "--quiet") == 1  # the same file again
    assert system.run("wait", "--timeout", "120") == 0
    export_after = tmp_path / "after.csv"
    assert system.run("export", "--out", str(export_after)) == 0
    assert read_csv(export_after) == read_csv(export_before)
    changes_after = len(consume_all(system.settings, Names(system.settings.topic_prefix).segment_changes))
    assert changes_after == changes_before


def test_export_filters_by_segment(system, tmp_path):
    tx = tmp_path / "tx.csv"
    tx.write_text(TX.replace("B2,,1.00,,d\n", ""))
    system.start_worker()
    assert system.run("rules", "apply", str(RETAIL)) == 0
    assert system.run("import", "transactions", str(tx), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0
    out = Path(tmp_path / "low.csv")
    assert system.run("export", "--dimension", "value", "--segment", "low_value", "--out", str(out)) == 0
    assert set(read_csv(out)) == {"A1"}
    assert system.run("export", "--dimension", "value") == 1  # --segment missing


def test_down_keeps_the_data_and_up_brings_it_back(tmp_path, monkeypatch, capsys):
    for key, value in {"SEGMENTER_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
                       "SEGMENTER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
                       "SEGMENTER_DATA_DIR": str(tmp_path / "var"), "SEGMENTER_WEB_PORT": str(free_port()),
                       "SEGMENTER_API_PORT": str(free_port()), "SEGMENTER_CLOCK": "event",
                       "SEGMENTER_PARTITIONS": "4", "SEGMENTER_ACTIONS_REPLAY_HORIZON": "0d"}.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "tx.csv").write_text(TX.replace("B2,,1.00,,d\n", ""))

    def snapshot() -> tuple[str, str, list[tuple[bytes | None, bytes]]]:
        capsys.readouterr()
        assert main(["export"]) == 0
        assert main(["rules", "history", "retail-value"]) == 0
        out = capsys.readouterr().out
        settings = load_settings()
        ledger = sorted((k, v) for k, v in consume_all(settings, Names(settings.topic_prefix).ledger_changelog)
                        if k and not k.startswith(b"\x00"))
        return out, settings.topic_prefix, ledger

    try:
        assert main(["up", "--detach"]) == 0
        assert main(["rules", "apply", str(RETAIL), "--author", "li.wei"]) == 0
        assert main(["import", "transactions", str(tmp_path / "tx.csv"), "--quiet"]) == 0
        assert main(["override", "set", "A1", "value", "high_value", "--reason", "key account"]) == 0
        assert main(["tick", "--to", "2026-06-30"]) == 0
        assert main(["wait", "--actions", "--timeout", "120"]) == 0
        before = snapshot()
        assert "A1" in before[0]
        assert "li.wei" in before[0]
        assert before[2], "the action ledger holds A1's alert"
        assert main(["down"]) == 0
        assert "the next `segmenter up` restores it" in capsys.readouterr().out
        assert main(["up", "--detach"]) == 0
        assert "restored" in capsys.readouterr().out
        assert main(["wait", "--actions", "--timeout", "120"]) == 0
        assert snapshot() == before
        assert main(["down", "--discard"]) == 0
        assert main(["up", "--detach", "--fresh"]) == 0
        capsys.readouterr()
        assert main(["export"]) == 0
        assert "A1" not in capsys.readouterr().out
    finally:
        assert main(["down", "--discard"]) == 0
