"""The dashboard in a real headless browser (Debian's chromium): the page loads, shows the numbers `/segments`
returns, and a lookup shows a customer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from streams.names import Names
from tests.integration.helpers import ROOT, serving, stream_in

CRM = ROOT / "examples" / "rules" / "crm.yaml"
TX = """customer_id,occurred_at,amount,kind,event_id
A,2026-06-01,100,,a1
B,2026-06-10,200,,b1
C,2026-06-20,300,,c1
B,2026-06-21,9000,,b2
"""
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def _browse(*args: str) -> str:
    assert BROWSER is not None
    done = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


INSTALLABLE = os.geteuid() == 0 and shutil.which("apt-get") is not None  # what `make browser` needs to install it


def test_the_dashboard_in_a_browser(system, tmp_path):
    if BROWSER is None:
        # skipped only where `make test` could not have installed it; where it could, its absence is a failure
        assert not INSTALLABLE, "chromium is missing though `make browser` (run by `make test`) can install it here"
        pytest.skip("Debian's chromium is not installed, and `make browser` needs root and apt-get to install it")
    stream_in(system, tmp_path, CRM, TX)
    with serving(system.settings) as api:
        base = str(api.base_url).rstrip("/")
        dom = _browse("--dump-dom", f"{base}/")
        shown = {(d, s): int(n.replace(",", "")) for d, s, n in re.findall(
            r"<tr class=\"segment\" data-dimension=\"([^\"]+)\" data-segment=\"([^\"]+)\">.*?"
            r"<td class=\"customers\">([\d,]+)</td>", dom)}
        expected = {(d, row["segment"]): row["customers"] for d, rows in api.get("/segments").json().items()
                    for row in rows}
        assert shown == expected
        assert shown["value", "low_value"] == 2
        assert f"<span class=\"group\">{Names(system.settings.topic_prefix).app_id}: 0</span>" in dom  # caught up
        assert "Movement, last 7 days" in dom

        looked = _browse("--dump-dom", f"{base}/?customer=B")
        lookup = re.search(r"<div id=\"lookup\">(.*?)</div>", looked, re.S)
        assert lookup is not None
        assert "<td>value</td><td>unclassified</td>" in lookup.group(1)  # 9,200 in 2 purchases: a retail gap
        missing = _browse("--dump-dom", f"{base}/?customer=nobody")
        assert "customer nobody is not known" in missing

        picture = tmp_path / "dashboard.png"
        _browse(f"--screenshot={picture}", "--window-size=1200,1400", f"{base}/?customer=B")
        assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
