"""Before `segmenter up` (or with the broker or Redis away) every command that needs them says, in one line,
what it could not reach and how to fix it, and exits non-zero, promptly, with no traceback or warning."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.stack.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = str(ROOT / "examples" / "rules" / "retail-value.yaml")
KAFKA = ("rules apply " + RULES, "rules show", "rules history", "rules rollback retail-value 1", "wait --timeout 5",
         "override list", "override set C1 value high_value --reason r", "override clear C1 value --reason r",
         "lag", "tick --to 2026-01-01", "topics create",
         "import transactions {tx}", "worker", "actions")
REDIS = ("report", "customer C0001", "export")


@pytest.fixture(scope="module")
def nothing_there(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("outage")
    (root / "tx.csv").write_text("customer_id,occurred_at,amount\nC1,2026-01-02,10.00\n")
    return {**os.environ, "SEGMENTER_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
            "SEGMENTER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "SEGMENTER_DATA_DIR": str(root / "var"),
            "TX": str(root / "tx.csv")}


@pytest.mark.parametrize(("command", "what", "setting"), [(c, "the Kafka broker", "SEGMENTER_KAFKA_BOOTSTRAP")
                                                          for c in KAFKA]
                         + [(c, "Redis", "SEGMENTER_REDIS_URL") for c in REDIS])
def test_a_command_says_what_it_could_not_reach(nothing_there, command, what, setting):
    args = command.format(tx=nothing_there["TX"]).split()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-W", "always", "-m", "streams.cli", *args], env=nothing_there,
                          capture_output=True, text=True, timeout=60, check=False)
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if args[0] in ("worker", "actions"):  # a service keeps its own log lines; its last one says why it stops
        lines = lines[-1:]
    assert len(lines) == 1, done.stderr
    address = nothing_there[setting]
    assert lines[0].startswith(f"error: cannot reach {what} at {address}"), lines[0]
    assert "segmenter up" in lines[0]
    assert setting in lines[0]
    assert "Unclosed" not in done.stderr
    assert "Traceback" not in done.stderr
    assert took < 30
