"""A one-line progress bar per epoch, redrawn in place on a terminal.

Off a terminal (a log file, CI) it draws nothing: the loop's periodic log lines carry
the same figures without filling the file with redraws.
"""

import sys
import time

_WIDTH = 30
_REDRAW_SECONDS = 0.2


class EpochProgress:
    """Shows `epoch E/N [=====>    ] b/B  d_loss ..  g_loss ..  img/s ..` for one epoch
    (`epoch E` while a --time-budget run has not planned its epochs)."""

    def __init__(
        self,
        epoch: int,
        num_epochs: int,
        total: int,
        done: int = 0,
        batch_size: int = 1,
        stream=None,
    ):
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = hasattr(self._stream, "isatty") and self._stream.isatty()
        self._label = f"epoch {epoch + 1}" + (f"/{num_epochs}" if num_epochs else "")
        self._total, self._done, self._start = total, done, done
        self._batch_size, self._started = batch_size, time.monotonic()
        self._last_draw = 0.0

    def update(self, done: int, values: dict, force: bool = False) -> None:
        """Records `done` batches of the epoch; redraws at most every 0.2 s."""
        self._done = done
        now = time.monotonic()
        if not self._enabled or (not force and now - self._last_draw < _REDRAW_SECONDS):
            return
        self._last_draw = now
        filled = int(_WIDTH * done / self._total)
        bar = "=" * filled + (">" if filled < _WIDTH else "") + " " * (_WIDTH - filled - 1)
        rate = (done - self._start) * self._batch_size / max(now - self._started, 1e-9)
        figures = "  ".join(f"{name} {value:.4g}" for name, value in values.items())
        figures += f"  img/s {rate:.0f}"
        self._stream.write(f"\r{self._label} [{bar}] {done}/{self._total}  {figures}")
        self._stream.flush()

    def close(self, values: dict) -> None:
        """Draws the final state and ends the line."""
        if self._enabled:
            self.update(self._done, values, force=True)
            self._stream.write("\n")
            self._stream.flush()
