"""Files and folders through tf.io.gfile, so a local path, gs:// or ram:// all work.

Output folders are created on demand and checked for writing before any long work
starts. gfile raises tf.errors.OpError where Python's file functions raise OSError;
callers catch both and name the reason with `reason`.
"""

import contextlib
import fnmatch
import os
import re
import uuid

import tensorflow as tf

from trainer.errors import TrainerError


def reason(err: Exception) -> str:
    """The short cause of a failed file operation, for a message that names the path
    itself: OSError's strerror, or an OpError's message without the 'PATH; ' that
    TensorFlow's local file system puts before its strerror (ram:// gives no message
    at all: then the error's kind, e.g. 'not found')."""
    if isinstance(err, OSError):
        return err.strerror or str(err)
    if isinstance(err, tf.errors.OpError):
        context, separator, rest = err.message.partition("; ")
        if separator and (context.startswith("/") or "://" in context or " " not in context):
            return rest
        if err.message:
            return err.message
        words = re.findall(r"[A-Z][a-z]*", type(err).__name__.removesuffix("Error"))
        return " ".join(words).lower() or type(err).__name__
    return str(err)


def matching(directory: str, pattern: str) -> list:
    """Sorted paths of the entries in `directory` whose names match the shell pattern
    `pattern` ([] if it is not a folder); as in glob, a name starting with a dot only
    if the pattern does. Lists the folder and matches the names here, rather than
    gfile.glob, which has no escape for a folder named with [ or *."""
    if not tf.io.gfile.isdir(directory):
        return []
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(directory))
    return sorted(
        os.path.join(directory, name)
        for name in names
        if fnmatch.fnmatchcase(name, pattern)
        and (pattern.startswith(".") or not name.startswith("."))
    )


def write_atomically(path: str, payload: bytes) -> None:
    """Writes `payload` under a temporary name beside `path`, then renames it over
    `path`, so a reader sees the old file or the new one, never half of one.

    Raises:
      OSError or tf.errors.OpError: the write failed; the temporary file is removed.
    """
    partial = path + ".partial"
    try:
        with tf.io.gfile.GFile(partial, "wb") as f:
            f.write(payload)
        tf.io.gfile.rename(partial, path, overwrite=True)
    except (OSError, tf.errors.OpError):
        with contextlib.suppress(OSError, tf.errors.OpError):  # keep the first error
            if tf.io.gfile.exists(partial):
                tf.io.gfile.remove(partial)
        raise


def ensure_writable_dir(path: str, flag: str) -> str:
    """Creates `path` if needed and proves a file can be written in it, by writing and
    removing a small probe file of a unique name.

    Args:
      path: the folder, local or a URL (gs://, ram://).
      flag: the command-line flag that sets it, named in the error.

    Returns:
      `path`, unchanged.

    Raises:
      TrainerError: the folder cannot be created or written.
    """
    probe = os.path.join(path, f".write-probe-{uuid.uuid4().hex}")
    try:
        tf.io.gfile.makedirs(path)
        with tf.io.gfile.GFile(probe, "wb") as f:
            f.write(b"probe")
        tf.io.gfile.remove(probe)
    except (OSError, tf.errors.OpError) as err:
        raise TrainerError(
            f"{flag} {path!r} is not a writable folder ({reason(err)}); "
            f"pass {flag} with a folder you can write"
        ) from err
    return path


def move_folder(source: str, target: str) -> None:
    """Renames the folder `source` to `target`, which must not exist.

    A local rename is atomic. On gs:// TensorFlow renames the folder's objects one by
    one, so a reader may see `target` before it is whole. TensorFlow's in-memory ram://
    file system renames a folder's own entry but not the files under it, so there the
    files are copied over and `source` is deleted.

    Raises:
      OSError or tf.errors.OpError: the move failed.
    """
    if not source.startswith("ram://"):
        tf.io.gfile.rename(source, target)
        return
    for folder, _, files in tf.io.gfile.walk(source):
        into = target + folder[len(source) :]
        tf.io.gfile.makedirs(into)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(into, name))
    tf.io.gfile.rmtree(source)
