"""What every command-line entry point shares: one log format on stderr, and a
TrainerError turned into one line and exit code 1. (TensorFlow's C++ start-up chatter is
hidden by the package's __init__, before anything imports TensorFlow.)"""

import logging
import sys


def setup_logging() -> None:
    """INFO lines as `HH:MM:SS LEVEL message`, TensorFlow's absl lines from WARNING."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("absl").setLevel(logging.WARNING)  # TensorFlow's per-save chatter


def fail(err: Exception) -> int:
    """Prints `error: <err>` to stderr (no traceback: the message names the fix)."""
    print(f"error: {err}", file=sys.stderr)
    return 1
