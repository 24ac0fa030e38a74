"""``stop`` returns as soon as a process it started has exited: an exited child that nobody reaped (a zombie)
still answers signal 0, and must not be waited out to the timeout."""

import subprocess
import sys
import time

from streams.stack.embedded import gone, stop


def test_stop_reaps_an_exited_child_at_once():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.monotonic()
    stop(child.pid, timeout_s=10)
    assert time.monotonic() - started < 3
    assert gone(child.pid)


def test_stop_kills_a_child_that_ignores_sigterm():
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout.readline() == b"ready\n"
    started = time.monotonic()
    stop(child.pid, timeout_s=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert gone(child.pid)
