"""SIGINT / SIGTERM at the moments that stress the save: inside a checkpoint write and at
an epoch boundary. Each must exit with the signal's code, save the step it reports and
resume from it. (trainer.tools.stop_latency measures the seconds at the default size.)"""

import os
import re
import signal
import subprocess
import sys

import pytest
from helpers import REPO, TINY_FLAGS

from trainer import checkpoints, task

pytestmark = pytest.mark.slow  # training processes stopped by signals

TINY = [*TINY_FLAGS, "--seed", "1", "--train-steps", "100000"]


def _start(tmp_path, idx_dir, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer.task",
            "--data-dir",
            idx_dir,
            "--checkpoint-dir",
            str(tmp_path / "ckpt"),
            "--log-dir",
            str(tmp_path / "logs"),
            *TINY,
            *extra,
        ],
        cwd=str(tmp_path),
        env=dict(os.environ, PYTHONPATH=REPO),
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop_when(process, pattern, signum):
    """Sends `signum` as soon as a log line matches `pattern`; returns (exit code, the
    step the run says it stopped at, the rest of its log)."""
    for line in process.stderr:
        if re.search(pattern, line):
            break
    process.send_signal(signum)
    rest = process.stderr.read()
    code = process.wait(timeout=120)
    assert "Traceback" not in rest, rest
    stopped = re.search(r"stopped by SIG\w+ at step (\d+)", rest)
    assert stopped, rest
    return code, int(stopped.group(1)), rest


def _assert_saved_and_resumable(tmp_path, idx_dir, step):
    folder = str(tmp_path / "ckpt")
    assert checkpoints.checkpoint_prefixes(folder)[0].endswith(f"ckpt-{step}")
    assert not [p for p in os.listdir(folder) if p.endswith("_temp")]  # no half writes
    assert (
        task.main(
            [
                "--continue-train",
                "--train-steps",
                str(step + 3),
                "--data-dir",
                idx_dir,
                "--checkpoint-dir",
                folder,
                "--log-dir",
                str(tmp_path / "logs"),
            ]
        )
        == 0
    )
    assert checkpoints.checkpoint_prefixes(folder)[0].endswith(f"ckpt-{step + 3}")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_inside_a_checkpoint_write(tmp_path, idx_dir, signum, code):
    # A checkpoint every step, and the signal right as one of them starts.
    process = _start(tmp_path, idx_dir, "--checkpoint-freq", "1", "--log-freq", "1")
    exit_code, step, _ = _stop_when(process, r"step 5/", signum)
    assert exit_code == code and step >= 5
    _assert_saved_and_resumable(tmp_path, idx_dir, step)


def test_signal_at_an_epoch_boundary(tmp_path, idx_dir):
    # 160 images in batches of 16: epoch 1 ends at step 10, whose log line comes just
    # before the epoch-end grid and checkpoint.
    process = _start(tmp_path, idx_dir, "--log-freq", "10", "--checkpoint-freq", "1000")
    exit_code, step, _ = _stop_when(process, r"step 10/", signal.SIGINT)
    assert exit_code == 130 and step >= 10
    _assert_saved_and_resumable(tmp_path, idx_dir, step)
