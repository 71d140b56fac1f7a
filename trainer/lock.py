"""One writer per checkpoint folder: an exclusive `flock` on a file inside it.

The kernel drops a flock when the process holding it exits, however it exits (SIGKILL and
power loss included), so a dead run never leaves a lock that blocks the next one. The file
itself stays, holding the last holder's pid for the message; it is never deleted, because
deleting a lock file lets two processes lock two different files of the same name.

Only local folders are locked. Object stores (gs://, s3://, and TensorFlow's ram://)
have no flock: a folder behind a URL scheme is not locked, and keeping one writer per
job folder there is the user's or the scheduler's responsibility.
"""

import fcntl
import os
import re
from typing import Optional

from trainer.errors import TrainerError

# Matches neither `ckpt-*` nor `checkpoint`, so it is never taken for a checkpoint or
# deleted by --overwrite.
LOCK_FILENAME = ".trainer.lock"

_held = {}  # real path of a folder -> file descriptor of its lock file, in this process
_URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")  # gs://, s3://, ram://, ...


def is_local(path: str) -> bool:
    """Whether `path` is on this machine's file system, not behind a URL scheme."""
    return not _URL_SCHEME.match(path)


def acquire(directory: str) -> Optional[str]:
    """Takes the exclusive lock on an existing local folder until `release` or process
    exit; a folder behind a URL scheme (gs://, ram://) is not locked.

    A process that already holds the folder keeps its lock: a process runs one training
    loop at a time, so a second acquire (a later `train.run` in the same process) means
    the first run has ended.

    Args:
      directory: the checkpoint folder; it must exist.

    Returns:
      The path of the lock file; None for a folder that is not local.

    Raises:
      TrainerError: another live process holds the folder (naming it and the holder's
        pid), or the lock file cannot be created.
    """
    if not is_local(directory):
        return None
    path = os.path.join(directory, LOCK_FILENAME)
    key = os.path.realpath(directory)
    if key in _held:
        return path
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: keep the pid
    except OSError as err:
        raise TrainerError(
            f"cannot create the lock file {path} ({err.strerror or err}); "
            "pass --checkpoint-dir with a folder you can write"
        ) from err
    _lock_or_explain(fd, path, directory)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # e.g. a full disk: the lock holds anyway, only the pid goes unnamed
        pass
    _held[key] = fd
    return path


def release(directory: str) -> None:
    """Lets other processes take `directory`; a no-op if this process does not hold it
    (or it is not local)."""
    if not is_local(directory):
        return
    fd = _held.pop(os.path.realpath(directory), None)
    if fd is not None:
        os.close(fd)  # closing the last descriptor drops the flock


def _lock_or_explain(fd, path, directory):
    """Locks `fd` without waiting; on failure closes it and raises the TrainerError."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _read_pid(fd)
        os.close(fd)
        if isinstance(err, BlockingIOError):
            raise TrainerError(
                f"checkpoint folder {directory!r} is in use by another training run (pid "
                f"{holder}); wait for it to finish or stop it, or pass another "
                "--checkpoint-dir"
            ) from err
        raise TrainerError(
            f"cannot lock {path} ({err.strerror or err}); pass "
            "--checkpoint-dir with a folder on a local disk"
        ) from err


def _read_pid(fd) -> str:
    """The pid the holder wrote, or 'unknown' if it has not written it yet."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"
