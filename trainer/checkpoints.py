"""The checkpoint folder as files: save, list, restore the newest that reads, refuse or
delete, publish.

TensorFlow writes a checkpoint's files under temporary names and lists them in the
`checkpoint` file only once complete, so a failed save leaves the previous ones as they
were; restoring skips a damaged newest checkpoint for the one before it.

Every file goes through tf.io.gfile, so the folder may be local, on gs:// or ram://.
`publish_model` copies the newest checkpoint to a folder of its own (Vertex AI's
AIP_MODEL_DIR), which --sample and --evaluate read as they read a checkpoint folder.
"""

import logging
import os

import tensorflow as tf

from trainer import paths
from trainer.errors import TrainerError
from trainer.train_config import CONFIG_FILENAME


def save(manager: tf.train.CheckpointManager, step: int) -> str:
    """Writes the checkpoint of `step` through `manager`.

    TensorFlow writes the new files under temporary names and lists them in the
    `checkpoint` file only once complete, so a failed write (a full disk, say) leaves
    the previous checkpoints restorable.

    Returns:
      The new checkpoint's path prefix, e.g. DIR/ckpt-500.

    Raises:
      TrainerError: the write failed, naming the folder, the reason and the last good
        checkpoint.
    """
    previous = manager.latest_checkpoint
    try:
        return manager.save(checkpoint_number=step)
    except (OSError, tf.errors.OpError) as err:
        raise TrainerError(
            f"could not write the step {step} checkpoint in {manager.directory!r} "
            f"({paths.reason(err)}); the last good checkpoint, {previous}, is intact. Free "
            "space or fix the folder, then resume with --continue-train True"
        ) from err


def publish_model(checkpoint_dir: str, model_dir: str) -> str:
    """Copies the newest checkpoint of `checkpoint_dir` (its .index and .data-* files)
    and its config.json into `model_dir`, with a `checkpoint` file listing only it, so
    `--sample --checkpoint-dir MODEL_DIR` reads model_dir as a checkpoint folder.

    The `checkpoint` file is written last, so a reader never finds the new checkpoint
    listed before its files are whole; files a previous publication left there stay,
    unlisted.

    Returns:
      `model_dir`.

    Raises:
      TrainerError: no checkpoint to publish, or a copy failed (the folder and the
        reason named).
    """
    prefixes = checkpoint_prefixes(checkpoint_dir)
    if not prefixes:
        raise TrainerError(
            f"no checkpoint in {checkpoint_dir!r} to publish; train one "
            "first, or pass the --checkpoint-dir of a trained run"
        )
    prefix, name = prefixes[0], os.path.basename(prefixes[0])
    sources = _data_files(prefix) + [
        prefix + ".index",
        os.path.join(checkpoint_dir, CONFIG_FILENAME),
    ]
    # A relative name, which get_checkpoint_state joins to the folder it reads, so the
    # published folder still reads after it is moved or copied.
    state = f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'
    try:
        tf.io.gfile.makedirs(model_dir)
        for source in sources:
            tf.io.gfile.copy(
                source, os.path.join(model_dir, os.path.basename(source)), overwrite=True
            )
        paths.write_atomically(os.path.join(model_dir, "checkpoint"), state.encode())
    except (OSError, tf.errors.OpError) as err:
        raise TrainerError(
            f"could not publish {prefix} to {model_dir!r} ({paths.reason(err)}); the "
            f"checkpoints in {checkpoint_dir!r} are intact: fix the model folder "
            "(AIP_MODEL_DIR) or copy the checkpoint there by hand"
        ) from err
    logging.info("published %s to %s", prefix, model_dir)
    return model_dir


def checkpoint_prefixes(directory: str) -> list:
    """Path prefixes of the checkpoints the `checkpoint` file lists, newest first."""
    state = tf.train.get_checkpoint_state(directory) if tf.io.gfile.isdir(directory) else None
    return list(reversed(state.all_model_checkpoint_paths)) if state else []


def restore_newest(checkpoint: tf.train.Checkpoint, directory: str, partial: bool = False) -> str:
    """Restores the newest checkpoint in `directory` that reads, skipping damaged ones.

    Args:
      checkpoint: the tf.train.Checkpoint to fill.
      directory: the checkpoint folder.
      partial: `checkpoint` asks for part of what was saved (sampling reads only the
        generator).

    Returns:
      The path prefix of the checkpoint restored.

    Raises:
      TrainerError: a checkpoint does not fit the networks built from config.json, or
        none reads.
    """
    prefixes = checkpoint_prefixes(directory)
    for prefix in prefixes:
        try:
            status = checkpoint.restore(prefix)
            if partial:
                status.expect_partial()
            status.assert_existing_objects_matched()
            return prefix
        except _DAMAGED as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            logging.warning(
                "checkpoint %s is damaged or unreadable (%s); skipping it",
                _damaged_file(prefix),
                reason,
            )
        except (AssertionError, ValueError) as err:
            raise TrainerError(
                f"{prefix} does not fit the networks its folder's {CONFIG_FILENAME} "
                f"describes ({err}); the folder mixes runs: use the folder a run wrote, "
                "or start fresh with another --checkpoint-dir"
            ) from err
    raise TrainerError(
        f"no checkpoint in {directory!r} can be restored (tried "
        f"{', '.join(os.path.basename(p) for p in prefixes) or 'none'}); start a fresh run "
        "with another --checkpoint-dir, or --overwrite to replace them"
    )


# What a missing, truncated or corrupt checkpoint file raises (a short data file raises
# IndexError from TensorFlow's reader); a shape mismatch raises ValueError instead.
_DAMAGED = (tf.errors.OpError, IndexError)


def _damaged_file(prefix):
    """The file of checkpoint `prefix` at fault: its .index if unreadable, else its data."""
    try:
        # Reads only the .index. Not tf.train.load_checkpoint: it takes a prefix for a
        # folder wherever gfile.isdir says so, as ram:// does for any prefix of a name.
        tf.compat.v1.train.NewCheckpointReader(prefix)
    except _DAMAGED + (ValueError,):
        return prefix + ".index"
    return ", ".join(_data_files(prefix)) or prefix + ".data-00000-of-00001"


def _data_files(prefix):
    """The .data-NNNNN-of-NNNNN shards of checkpoint `prefix`."""
    return paths.matching(os.path.dirname(prefix), os.path.basename(prefix) + ".data-*")


def refuse_or_delete(directory, overwrite):
    """Refuses to start fresh over checkpoints, or deletes them with --overwrite."""
    found = _checkpoint_files(directory)
    if found and not overwrite:
        newest = (checkpoint_prefixes(directory) or ["partial files"])[0]
        raise TrainerError(
            f"{directory!r} already holds checkpoints ({newest}); pass --continue-train "
            "True to resume them, another --checkpoint-dir, or --overwrite to replace them"
        )
    if found:
        _delete_checkpoints(directory)


def _checkpoint_files(directory):
    """Checkpoint files and the `checkpoint` list; not config.json or the lock file."""
    return paths.matching(directory, "ckpt-*") + paths.matching(directory, "checkpoint")


def _delete_checkpoints(directory):
    logging.warning("--overwrite: deleting the checkpoints in %s", directory)
    for path in _checkpoint_files(directory) + [os.path.join(directory, CONFIG_FILENAME)]:
        if tf.io.gfile.isdir(path):  # ckpt-N_temp/, left by a write that was interrupted
            tf.io.gfile.rmtree(path)
        elif tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
