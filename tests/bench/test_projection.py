"""bench.projection runs its two passes against a Redis of its own and checks what they left there."""

import subprocess
import sys


def test_the_projection_bench_prints_both_passes_and_its_check_holds() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.projection", "--rows", "300"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["pass 1 (new customers)", "pass 2 (one dimension moved)"]
    assert all("300 rows, Redis " in line for line in lines)
