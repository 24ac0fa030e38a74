"""`make run`'s tour (`segmenter demo run`) on a small population, as a user runs it: a process of its own that
starts the embedded stack, applies the rules, imports a year of history, streams live purchases, works the
operator's desk and stops everything; what it prints is what the README promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.stack.embedded import StackInfo, free_port

pytestmark = pytest.mark.integration


def test_the_demo_tour_runs_end_to_end_and_leaves_nothing_running(tmp_path: Path) -> None:
    env = {**os.environ, "SEGMENTER_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
           "SEGMENTER_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "SEGMENTER_API_PORT": str(free_port()),
           "SEGMENTER_WEB_PORT": str(free_port()), "SEGMENTER_DATA_DIR": str(tmp_path / "var"),
           "SEGMENTER_TOPIC_PREFIX": "demo."}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "demo", "run", "--customers", "300",
                           "--live-seconds", "3"], env=env, capture_output=True, text=True, timeout=600, check=False)
    out = done.stdout
    assert done.returncode == 0, (out[-3000:], done.stderr[-3000:])
    for step in ("$ segmenter rules apply", "$ segmenter import transactions", "$ segmenter report",
                 "$ segmenter override set C0000001 value high_value", "$ segmenter rules preview",
                 "$ segmenter rules rollback crm 1", "$ segmenter customer C0000001"):
        assert step in out, step
    assert "dimension      segment" in out  # the report's table
    assert "交易趋势" in out  # crm.yaml's Chinese dimension
    assert "strategies (策略):" in out  # and the strategies its segments carry
    assert "crm v3" in out  # the rules history after the rollback
    assert "pinned: " in out  # the customer's story shows the override
    info = StackInfo.load(tmp_path / "var" / "stack.json")
    assert info is None or not any(info.ours(pid) for pid in info.pids())  # down stopped what up started
