"""`python -m streams.cli` (how workers are spawned, and `make run`) reports errors like the console script."""

import os
import subprocess
import sys


def test_a_bad_setting_is_one_sentence_and_exit_1_not_a_traceback():
    env = {**os.environ, "SEGMENTER_ACTIONS_REPLAY_HORIZON": "5m"}
    done = subprocess.run([sys.executable, "-m", "streams.cli", "report"], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == ("error: bad setting SEGMENTER_ACTIONS_REPLAY_HORIZON: Value error, '5m' is not a "
                                   "duration: use a whole number of d, h or s (30d, 12h, 90s)")
