"""--time-budget: a run that plans its steps so it ends, schedule completed, by a deadline.

The deadline counts from the process's start (start-up, data loading and compilation
are spent from the budget) plus, on resume, the time the checkpoint says was already
spent. Once the step is compiled the Planner measures the seconds a step takes and
plans the last step: the time left, less what the end costs (the final checkpoint,
grid and quality check), over the seconds a step costs with its share of the epoch ends
and checkpoints on the way. It keeps measuring, and re-plans when the planned end
drifts from the deadline (another process taking the cores), so the learning-rate decay
over the last steps (train.learning_rate_scale) still ends at the last step.

Pure: the clock is passed in, so tests drive it.
"""

import math
import os
import re
import time

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*$")
# What the process's exit after the last write takes.
EXIT_SECONDS = 2.5
# The plan aims this share of the budget short of the deadline, so a pace that slows
# by less than a re-plan's threshold still ends inside the budget.
MARGIN = 0.01
# Re-plan when the planned end moves this far from its aim: this share of the time left
# (pace noise does not re-plan), at least MARGIN of the budget and a second.
DRIFT = 0.05
# The pace is measured over this share of the budget (at least 10 s, at most 2 min).
PACE_WINDOW = 0.05


def parse_duration(text) -> float:
    """'90s', '20m', '1.5h' or a bare number of seconds -> seconds.

    Raises:
      ValueError: not such a duration, or not positive; the message names the value
        and the forms taken.
    """
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(
            f"{text!r} is not a duration: write a number and s, m or h (90s, 20m, 1.5h)"
        )
    seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"{text!r} is no time at all: give a positive duration (20m)")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds as the log shows them: 95.0 -> '1m35s', 3700 -> '1h01m40s'."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def process_age(clock=time.time) -> float:
    """Seconds since this process started (Linux's /proc), else since this module was
    imported: what the budget has spent before the trainer could count."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return clock() - _IMPORTED


_IMPORTED = time.time()


class Planner:
    """Plans a run's last step from its measured pace so it ends by the deadline.

    Without a budget it only keeps the time spent.

    Args:
      budget: the run's whole budget, seconds, or None.
      spent: seconds of it already spent: the checkpoint's record on resume plus this
        process's age when the planner is made.
      clock: seconds, monotonic (time.monotonic; a fake in tests).
      per_epoch: steps in an epoch, each of which ends with a grid and a quality check.
      checkpoint_freq: steps between checkpoints.
    """

    def __init__(self, budget, spent, clock=time.monotonic, per_epoch=None, checkpoint_freq=None):
        self.budget = None if budget is None else float(budget)
        self._clock = clock
        self._made = clock()
        self._spent_before = float(spent)
        self._per_epoch = per_epoch
        self._checkpoint_freq = checkpoint_freq
        self.epoch_end_seconds = 0.0  # an epoch end's grid and quality check
        self.save_seconds = 0.0  # one checkpoint
        self.step_seconds = None  # a step, measured
        self.total = None  # the planned last step
        self.plans = 0

    @property
    def deadline(self) -> float:
        """The clock's reading by which the run must have finished."""
        return self._made + self.budget - self._spent_before

    def spent(self) -> float:
        """Seconds of the budget spent so far, counting earlier processes of the run."""
        return self._spent_before + self._clock() - self._made

    def left(self) -> float:
        return self.deadline - self._clock()

    def end_seconds(self) -> float:
        """What follows the last step: the final checkpoint, the grid and quality check
        of the partial epoch, and the process's exit."""
        return self.save_seconds + self.epoch_end_seconds + EXIT_SECONDS

    def _aim(self) -> float:
        """The clock's reading the plan ends at: MARGIN short of the deadline."""
        return self.deadline - MARGIN * self.budget

    def seconds_per_step(self, step_seconds: float) -> float:
        """A step of `step_seconds` with its share of the epoch ends and checkpoints on
        the way."""
        cost = step_seconds
        if self._per_epoch:
            cost += self.epoch_end_seconds / self._per_epoch
        if self._checkpoint_freq:
            cost += self.save_seconds / self._checkpoint_freq
        return cost

    def plan(self, step: int, step_seconds: float) -> int:
        """Plans the last step from `step` at `step_seconds` a step; returns it (at
        least `step`: none left when the end alone would overrun)."""
        self.step_seconds = step_seconds
        room = self._aim() - self._clock() - self.end_seconds()
        self.total = step + max(0, math.floor(room / self.seconds_per_step(step_seconds)))
        self.plans += 1
        return self.total

    def drifted(self, step: int, step_seconds: float) -> bool:
        """Whether, at `step_seconds` a step, the planned end would miss its aim by more
        than DRIFT of the time left (at least MARGIN of the budget, and a second)."""
        to_go = (self.total - step) * self.seconds_per_step(step_seconds)
        finish = self._clock() + to_go + self.end_seconds()
        allowed = max(1.0, MARGIN * self.budget, DRIFT * self.left())
        return abs(finish - self._aim()) > allowed


class Pace:
    """Seconds a step takes, averaged over the steps of the last `window` seconds (and
    at least the last `least` steps), epoch ends and checkpoints left out (the Planner
    counts those apart). A long window keeps noise from re-planning; a short one
    notices sooner when another process takes the cores."""

    def __init__(self, window: float, least: int = 16):
        self._window, self._least = window, least
        self._steps = []  # seconds each kept step took, oldest first

    def add(self, seconds: float) -> None:
        self._steps.append(seconds)
        total, keep = 0.0, 0
        for step_seconds in reversed(self._steps):
            if total >= self._window and keep >= self._least:
                break
            total, keep = total + step_seconds, keep + 1
        del self._steps[:-keep]

    def __len__(self) -> int:
        return len(self._steps)

    def seconds(self) -> float:
        return sum(self._steps) / len(self._steps)
