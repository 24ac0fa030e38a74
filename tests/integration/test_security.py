"""Redis AUTH for real: a Redis that requires a password serves a worker, the read model and the CLI given
SEGMENTER_REDIS_PASSWORD, and refuses them without it, with a sentence that never shows the password."""

from __future__ import annotations

import subprocess
import sys

from pydantic import SecretStr

from streams.readmodel.reader import ReadModel
from streams.stack.embedded import free_port, start_redis, stop
from tests.integration.helpers import RETAIL, stream_in

TX = """customer_id,occurred_at,amount,kind,event_id
A,2026-06-01,100,,a1
"""
PASSWORD = "s3cret-Redis-pw"  # noqa: S105 - the test Redis's own


def test_a_redis_with_a_password(system, tmp_path, monkeypatch):
    port = free_port()
    server = start_redis(port, tmp_path / "redis", password=PASSWORD)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        for key, value in (("SEGMENTER_REDIS_URL", url), ("SEGMENTER_REDIS_PASSWORD", PASSWORD)):
            monkeypatch.setenv(key, value)
            system.env[key] = value
        stream_in(system, tmp_path, RETAIL, TX)
        settings = system.settings
        assert settings.redis_password == SecretStr(PASSWORD)
        assert ReadModel.of(settings).customer("A").segments == {"value": "low_value"}

        env = {**system.env, "SEGMENTER_REDIS_PASSWORD": "wrong"}
        for given in (env, {k: v for k, v in env.items() if k != "SEGMENTER_REDIS_PASSWORD"},
                      {**env, "SEGMENTER_REDIS_URL": f"redis://:wrong-in-url@127.0.0.1:{port}/0",
                       "SEGMENTER_REDIS_PASSWORD": ""}):
            done = subprocess.run([sys.executable, "-m", "streams.cli", "export"], env=given, capture_output=True,
                                  text=True, timeout=60, check=False)
            assert done.returncode == 1, done.stderr
            assert "refused the credentials: set SEGMENTER_REDIS_USERNAME and SEGMENTER_REDIS_PASSWORD" in done.stderr
            assert "wrong" not in done.stderr  # the password given is not shown, even inside the URL
            assert "Traceback" not in done.stderr
        done = subprocess.run([sys.executable, "-m", "streams.cli", "export"], env=system.env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[1].startswith("A,low_value,")
    finally:
        stop(server.pid)
