"""A short ``make soak``: kills on own and empty data dirs, Redis killed and restarted empty, copies, late records
and the whole hostile corpus, on a small stream, with the action worker in it (killed by its failpoint right
after a grant, before its ledger write). The command's own checks decide: export equals classify, dead letters
equal the hostile records, no grant twice, no entry without its grant or suppression, no worker stopped unless
killed."""

from __future__ import annotations

import os

import pytest

from bench.soak import main

pytestmark = pytest.mark.integration


def test_a_short_soak_passes(tmp_path, capsys):
    saved = dict(os.environ)  # the soak points SEGMENTER_* at its own stack; later tests must not see it
    try:
        status = main(["--events", "50000", "--customers", "10000", "--hostile", "210", "--kill-seconds", "20",
                       "--kill-life-s", "4,7", "--redis-after-s", "5", "--redis-outage-s", "8",
                       "--finish-timeout-s", "300", "--dir", str(tmp_path / "soak")])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out = capsys.readouterr().out
    assert "dead letters / hostile records sent       210 / 210 (missing 0, extra 0)" in out, out
    kills = int(next(line for line in out.splitlines() if line.startswith("worker kills (SIGKILL)")).split()[-1])
    assert kills >= 2, out
    assert "grants issued twice                       0" in out, out
    assert "entries with no grant and no suppression  0" in out, out
    assert "its failpoint after a grant); restarted" in out, out  # killed once, started again
    assert status == 0, out
