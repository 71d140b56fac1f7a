"""The trainer as a child process, as a user runs it: `python -m trainer.task ...`
stopped by SIGINT after a time budget, its wall time and peak memory measured."""

import os
import signal
import subprocess
import sys
import tempfile
import time

from trainer.errors import TrainerError


def run_child(args: list, timeout: float = None, show_log: bool = False) -> dict:
    """Runs `python -m trainer.task ARGS`, stopped with SIGINT (the trainer saves and
    exits) after `timeout` seconds; returns its wall time and peak resident memory.

    With show_log the child's log goes to this terminal, and a Ctrl-C stops the child
    (the trainer installs its own handler: it saves and exits) while this process
    ignores it and goes on to report.
    """
    start = time.perf_counter()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if show_log else None
    try:
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trainer.task", *args],
                stdout=subprocess.DEVNULL,
                stderr=None if show_log else errors,
            )
            interrupted = False
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if timeout and not interrupted and time.perf_counter() - start > timeout:
                    proc.send_signal(signal.SIGINT)
                    interrupted = True
                time.sleep(0.05)
            proc.returncode = os.waitstatus_to_exitcode(status)
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if proc.returncode not in (0, 130):
        raise TrainerError(
            f"`python -m trainer.task {' '.join(args)}` failed "
            f"(exit {proc.returncode}): {stderr[-500:]}"
        )
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }  # Linux reports kilobytes


def data_flag(data_dir) -> list:
    """["--data-dir", data_dir], or nothing for the Keras cache."""
    return ["--data-dir", data_dir] if data_dir else []
