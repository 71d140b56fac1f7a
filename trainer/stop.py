"""Ctrl-C and SIGTERM as a request to save and stop, agreed by every worker."""

import logging
import signal
import threading


class StopOnSignal:
    """Turns the first SIGINT or SIGTERM into a request to save and stop; a second
    SIGINT interrupts at once.

    `requested` is this process's signal. `agreed` is the stop every worker acts on:
    the request itself in a one-process run; with several workers, set by `observe`
    from the step's `stop`, the largest request of any worker in that step, so all of
    them save the same step and none is left waiting on the others.
    """

    def __init__(self, shared: bool = False):
        self.requested = None
        self._shared = shared
        self._agreed = None
        self._previous = {}

    @property
    def agreed(self):
        return self._agreed if self._shared else self.requested

    def observe(self, stop: float) -> None:
        if stop > 0 and not self._agreed:
            self._agreed = self.requested or "a signal to another worker"

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        logging.warning(
            "%s received: saving a checkpoint at the current step, then "
            "stopping (Ctrl-C again to abort)",
            self.requested,
        )

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False
