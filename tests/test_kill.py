"""SIGKILL at random moments, checkpoint writes included: every resume continues from the
last complete checkpoint and the run ends at its step budget."""

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
from helpers import REPO, TINY_FLAGS

from trainer import checkpoints

pytestmark = pytest.mark.slow  # 6 process starts and kills: minutes

BUDGET = 120  # above the most the kills can reach (6 x 12 steps), so each lands mid-run
KILLS = 6


def _launch(tmp_path, idx_dir, resume):
    flags = [
        "--data-dir",
        idx_dir,
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--log-dir",
        str(tmp_path / "logs"),
        "--train-steps",
        str(BUDGET),
        *TINY_FLAGS,
        "--log-freq",
        "1",
        "--checkpoint-freq",
        "3",
    ]  # frequent writes, so kills land inside them
    flags.append("--continue-train" if resume else "--overwrite")
    return subprocess.Popen(
        [sys.executable, "-m", "trainer.task", *flags],
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=REPO),
        stderr=subprocess.PIPE,
        text=True,
    )


def _saved_step(folder):
    prefixes = checkpoints.checkpoint_prefixes(folder)
    return int(prefixes[0].rsplit("-", 1)[1]) if prefixes else None


def test_sigkill_at_random_moments_loses_nothing_saved(tmp_path, idx_dir):
    rng = random.Random(0)
    folder = str(tmp_path / "ckpt")
    saved_before, resumed_from = None, []
    for _ in range(KILLS):
        process = _launch(tmp_path, idx_dir, resume=saved_before is not None)
        lines_to_wait = rng.randint(1, 12)
        for line in process.stderr:
            match = re.search(r"resumed from step (\d+)", line)
            if match:
                resumed_from.append((int(match.group(1)), saved_before))
            if " step " in line and f"/{BUDGET}" in line:
                lines_to_wait -= 1
                if lines_to_wait == 0:
                    break
        time.sleep(rng.uniform(0, 0.05))  # land anywhere in a step or a checkpoint write
        process.send_signal(signal.SIGKILL)
        _, rest = process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, rest  # it was still training
        saved = _saved_step(folder)
        assert saved is None or saved_before is None or saved >= saved_before
        saved_before = saved if saved is not None else saved_before
    # Every resume started from the newest checkpoint listed when it launched.
    assert resumed_from and all(step == expected for step, expected in resumed_from)
    final = _launch(tmp_path, idx_dir, resume=True)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert f"resumed from step {saved_before}" in err
    assert _saved_step(folder) == BUDGET
