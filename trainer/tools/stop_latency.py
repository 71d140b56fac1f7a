"""python -m trainer.tools.stop_latency: seconds from Ctrl-C (or SIGTERM) to a saved checkpoint
and exit, for a default-size training stopped at the moments that make it slowest.

    python -m trainer.tools.stop_latency --data-dir ../shared/mnist

Each case trains from scratch with the README's command into a temporary folder, sends
the signal at its moment, and checks that the run saved the step it reports and exited
130 (143 for SIGTERM). Prints a table and one JSON line.
"""

import argparse
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from trainer import checkpoints, cli
from trainer.errors import TrainerError
from trainer.train_config import TrainConfig

EPOCH_STEPS = 60_000 // TrainConfig().batch_size  # steps in one MNIST epoch by default

# (name, signal, extra flags, log line to wait for, CPU hogs beside the run)
CASES = [
    ("mid-epoch", signal.SIGINT, [], r"step 200/", 0),
    ("mid-epoch, SIGTERM", signal.SIGTERM, [], r"step 200/", 0),
    ("under load (2 busy processes)", signal.SIGINT, [], r"step 200/", 2),
    # A checkpoint every step: most of the run's time is spent writing them.
    (
        "during a checkpoint write",
        signal.SIGINT,
        ["--checkpoint-freq", "1"],
        r"saved checkpoint .*ckpt-100$",
        0,
    ),
    # The log line of an epoch's last step comes just before its quality probe, grid
    # and checkpoint.
    (
        "at an epoch boundary",
        signal.SIGINT,
        ["--log-freq", str(EPOCH_STEPS)],
        rf"step {EPOCH_STEPS}/",
        0,
    ),
]


def measure(name, signum, flags, wait_for, hogs, data_dir, folder) -> dict:
    """Runs one case; returns its latency and what was saved."""
    ckpt = os.path.join(folder, name.replace(" ", "_").replace(",", ""))
    command = [
        sys.executable,
        "-m",
        "trainer.task",
        "--checkpoint-dir",
        ckpt,
        "--log-dir",
        ckpt + "-log",
        *flags,
    ] + (["--data-dir", data_dir] if data_dir else [])
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    busy = []
    try:
        for line in process.stderr:
            if re.search(wait_for, line.rstrip()):
                break
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(hogs)]
        if hogs:
            time.sleep(2)  # let the load bite
        sent = time.perf_counter()
        process.send_signal(signum)
        rest = process.stderr.read()
        code = process.wait()
        seconds = time.perf_counter() - sent
    finally:
        for hog in busy:
            hog.kill()
            hog.wait()
        if process.poll() is None:
            process.kill()
    stopped = re.search(r"stopped by SIG\w+ at step (\d+)", rest)
    if not stopped:
        raise TrainerError(
            f"case {name!r}: the run did not report a stop (exit {code}): {rest[-400:]}"
        )
    step = int(stopped.group(1))
    newest = checkpoints.checkpoint_prefixes(ckpt)[0]
    return {
        "case": name,
        "seconds": seconds,
        "exit_code": code,
        "stopped_at_step": step,
        "saved": newest.endswith(f"ckpt-{step}"),
        "newest_checkpoint": newest,
    }


def main(argv=None) -> int:
    cli.setup_logging()
    parser = argparse.ArgumentParser(
        prog="python -m trainer.tools.stop_latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", help="MNIST folder, as for trainer.task")
    args = parser.parse_args(argv)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for case in CASES:
                rows.append(measure(*case, args.data_dir, folder))
                logging.info("%s: %.2f s", rows[-1]["case"], rows[-1]["seconds"])
    except TrainerError as err:
        return cli.fail(err)
    print(f"{'case':<34}{'seconds':>8}{'exit':>6}{'step':>7}  saved")
    for row in rows:
        print(
            f"{row['case']:<34}{row['seconds']:>8.2f}{row['exit_code']:>6}"
            f"{row['stopped_at_step']:>7}  {'yes' if row['saved'] else 'NO'}"
        )
    print(json.dumps(rows))
    return 0 if all(row["saved"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
