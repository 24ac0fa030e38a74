"""bench.engine's rules change: every customer of one purchase moves under version 2, and the bench says so."""

import re
import subprocess
import sys


def test_the_engine_bench_re_evaluates_every_customer_under_version_two() -> None:
    command = [sys.executable, "-m", "bench.engine", "--rules-change", "--customers", "3000", "--runs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    found = re.search(r"engine rules change: ([\d,]+) customers re-evaluated .*: ([\d.]+) µs/customer .*; "
                      r"([\d,]+) changes", done.stdout)
    assert found, done.stdout
    assert found.group(1) == "3,000", done.stdout
    assert found.group(3) == "3,000", done.stdout  # each of them enters first_timer
    assert float(found.group(2)) > 0
