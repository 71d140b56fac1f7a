"""Output folders: created on demand, checked for writing before any long work starts."""

import os
import tempfile

from trainer.errors import TrainerError


def ensure_writable_dir(path: str, flag: str) -> str:
    """Creates `path` if needed and proves a file can be written in it.

    Args:
      path: the folder.
      flag: the command-line flag that sets it, named in the error.

    Returns:
      `path`, unchanged.

    Raises:
      TrainerError: the folder cannot be created or written.
    """
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise TrainerError(f"{flag} {path!r} is not a writable folder ({err.strerror or err}); "
                           f"pass {flag} with a folder you can write") from err
    return path
