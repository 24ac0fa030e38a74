"""The bench's CPU shares: what it prints beside a phase's figures must be what the processes used."""

import os
import time

from bench.cpu import CpuMeter, cpu_seconds

NO_SUCH_PID = 2**22 + 1  # above Linux's largest pid_max


def test_a_busy_process_shows_its_share_and_a_missing_one_is_left_out() -> None:
    with CpuMeter({"me": os.getpid(), "gone": NO_SUCH_PID}) as meter:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
    assert 0.05 < meter.shares["me"] <= 1.5  # 0.3 s of CPU over the block's wall time
    assert "gone" not in meter.shares
    assert meter.line().startswith("me ")
    assert cpu_seconds(NO_SUCH_PID) is None


def test_an_idle_block_uses_almost_nothing() -> None:
    with CpuMeter({"me": os.getpid()}) as meter:
        time.sleep(0.3)
    assert meter.shares["me"] < 0.5
