"""What every command-line entry point shares: TensorFlow's start-up chatter hidden, one
log format on stderr, and a TrainerError turned into one line and exit code 1."""

import logging
import os
import sys


def setup_logging() -> None:
    """INFO lines as `HH:MM:SS LEVEL message`; call before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up chatter
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("absl").setLevel(logging.WARNING)  # TensorFlow's per-save chatter


def fail(err: Exception) -> int:
    """Prints `error: <err>` to stderr (no traceback: the message names the fix)."""
    print(f"error: {err}", file=sys.stderr)
    return 1
