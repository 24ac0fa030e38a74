"""A short ``make soak``: every part of it (kills on own and empty data dirs, Redis killed and restarted empty,
the action worker killed between a grant and its ledger write, copies, late records, the whole hostile corpus),
on a small stream. The command's own checks decide: export equals classify, dead letters equal the hostile
records, no grant missing or twice, no worker stopped unless killed."""

from __future__ import annotations

import pytest

from bench.soak import main

pytestmark = pytest.mark.integration


def test_a_short_soak_passes(tmp_path, capsys):
    status = main(["--events", "40000", "--customers", "4000", "--hostile", "210", "--kill-seconds", "45",
                   "--kill-life-s", "8,12", "--redis-after-s", "5", "--redis-outage-s", "8", "--grant-kill", "10",
                   "--finish-timeout-s", "300", "--dir", str(tmp_path / "soak")])
    out = capsys.readouterr().out
    assert "dead letters / hostile records sent       210 / 210 (missing 0, extra 0)" in out, out
    assert "worker kills (SIGKILL)" in out
    assert status == 0, out
