"""Backup and restore on the real broker and Redis: a backup taken while workers run, restored into an empty stack,
gives the same export, the same rules history, overrides and tags, and issues no coupon or alert again; corrupt and
foreign archives are refused."""

from __future__ import annotations

import csv
import gzip
import io
import stat
import tarfile
import uuid
from pathlib import Path

import pytest

from streams.cli.common import load_settings
from streams.cli.main import main
from streams.names import Names
from streams.readmodel.reader import ReadModel
from streams.stack.embedded import free_port
from tests.integration.helpers import RETAIL, consume_all

TX = """customer_id,occurred_at,amount,kind,event_id
A,2025-09-01,100,,a1
B,2026-05-01,200,,b1
C,2026-06-01,300,,c1
"""


def _export(system, capsys) -> dict[str, dict[str, str]]:
    capsys.readouterr()
    assert system.run("export") == 0
    return {row["customer_id"]: row for row in csv.DictReader(io.StringIO(capsys.readouterr().out))}


def _grants(system) -> int:
    names = Names(system.settings.topic_prefix)
    return len(consume_all(system.settings, names.coupons)) + len(consume_all(system.settings, names.alerts))


def test_backup_restore_into_an_empty_stack(system, tmp_path, capsys, monkeypatch):
    assert system.run("rules", "apply", str(RETAIL), "--author", "li.wei", "--message", "first tiers") == 0
    system.start_worker(data_dir=tmp_path / "w1")
    system.start_actions(data_dir=tmp_path / "a1", actions_replay_horizon="0d")
    (tmp_path / "tx.csv").write_text(TX)
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("tick", "--to", "2026-06-30") == 0  # A: churn_risk, a coupon
    assert system.run("override", "set", "B", "value", "high_value", "--reason", "key account") == 0  # an alert
    assert system.run("tag", "add", "C", "vip:gold", "--reason", "board member") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    before = _export(system, capsys)
    assert before["B"]["value"] == "high_value"
    assert before["C"]["tags"] == "vip:gold"
    assert _grants(system) == 2

    archive = tmp_path / "backup.tar.gz"
    assert system.run("backup", str(archive)) == 0  # the workers still run
    assert "3 customers" in capsys.readouterr().out

    corrupt = tmp_path / "corrupt.tar.gz"
    raw = bytearray(gzip.decompress(archive.read_bytes()))
    at = raw.index(b'"k":"Qw')  # inside customers.jsonl: customer C's key
    raw[at + 6] ^= 1
    corrupt.write_bytes(gzip.compress(bytes(raw)))
    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        data = b'{"format": "something-else/3"}'
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    for bad, said in ((corrupt, "is corrupt: customers.jsonl"), (foreign, "not a backup this version reads"),
                      (tmp_path / "junk.tar.gz", "is not a segmenter backup")):
        capsys.readouterr()
        assert system.run("restore", str(bad)) == 1
        assert said in capsys.readouterr().err

    # an empty stack: a new topic prefix (its own topics, consumer groups and Redis keys)
    prefix = f"r{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("SEGMENTER_TOPIC_PREFIX", prefix)
    system.env["SEGMENTER_TOPIC_PREFIX"] = prefix
    assert system.run("restore", str(archive)) == 0
    assert system.run("restore", str(archive)) == 1  # not into a stack that holds customers
    assert "already holds customers" in capsys.readouterr().err
    assert _export(system, capsys) == before  # Redis is whole before any worker runs

    system.start_worker(data_dir=tmp_path / "w2")
    system.start_actions(data_dir=tmp_path / "a2", actions_replay_horizon="0d")
    assert system.run("tick", "--to", "2026-06-30") == 0
    assert system.run("wait", "--actions", "--timeout", "120") == 0
    assert _export(system, capsys) == before
    assert consume_all(system.settings, Names(prefix).segment_changes) == []  # nothing reclassified
    assert _grants(system) == 0  # no coupon or alert again
    capsys.readouterr()
    assert system.run("rules", "history", "retail-value") == 0
    assert "li.wei  first tiers" in capsys.readouterr().out
    assert system.run("override", "list") == 0
    assert "key account" in capsys.readouterr().out
    assert system.run("tag", "list") == 0
    assert "vip:gold" in capsys.readouterr().out


def _embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system) -> dict[str, str]:
    """Settings of a second, embedded stack (`segmenter up`), beside the test session's."""
    env = {**system.env, "SEGMENTER_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
           "SEGMENTER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "SEGMENTER_DATA_DIR": str(tmp_path / "up"),
           "SEGMENTER_WEB_PORT": str(free_port()), "SEGMENTER_API_PORT": str(free_port())}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_restore_into_a_stack_started_by_up_and_the_workers_go_on_from_it(system, tmp_path, capsys, monkeypatch):
    assert system.run("rules", "apply", str(RETAIL)) == 0
    system.start_worker(data_dir=tmp_path / "w1")
    (tmp_path / "tx.csv").write_text("customer_id,occurred_at,amount,kind,event_id\n"
                                     "R,2026-04-01,100,,r1\nR,2026-05-01,100,,r2\nR,2026-06-01,100,,r3\n")
    assert system.run("import", "transactions", str(tmp_path / "tx.csv"), "--quiet") == 0
    assert system.run("wait", "--timeout", "120") == 0
    archive = tmp_path / "backup.tar.gz"
    assert system.run("backup", str(archive)) == 0
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600

    _embedded(tmp_path, monkeypatch, system)
    try:
        assert main(["up", "--no-workers"]) == 0
        assert main(["restore", str(archive)]) == 0  # starts the workers on the restored state
        assert "worker ready" in capsys.readouterr().out
        settings = load_settings()
        assert ReadModel.of(settings).customer("R").doc["metrics"]["purchases_12m"] == 3
        (tmp_path / "more.csv").write_text("customer_id,occurred_at,amount,kind,event_id\nR,2026-06-10,100,,r4\n")
        assert main(["import", "transactions", str(tmp_path / "more.csv"), "--quiet"]) == 0
        assert main(["wait", "--actions", "--timeout", "120"]) == 0  # the action worker consumes too
        view = ReadModel.of(settings).customer("R")
        assert view is not None
        assert view.doc["metrics"]["purchases_12m"] == 4  # on from the restored three
        capsys.readouterr()
        assert main(["restore", str(archive)]) == 1  # workers run on it now
        assert "workers are running" in capsys.readouterr().err
    finally:
        assert main(["down"]) == 0
