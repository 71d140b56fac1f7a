"""Training state and its checkpoints: one restore-or-initialize path, resume and refusal.

A checkpoint holds both networks, the generator's moving average, both optimizers, the
global step, the epoch, the batch inside the epoch and the noise generator's state, so
a resumed run continues exactly where the interrupted one stopped.

A run holds its folder's lock (trainer.lock) from restore_or_initialize until `release`
or its exit, so two runs never write one folder. Resuming or sampling skips a damaged
newest checkpoint for the one before it, and a failed save leaves the previous ones as
they were.
"""

import dataclasses
import glob
import logging
import os
import shutil

import tensorflow as tf

from trainer import latent, lock, model
from trainer.errors import TrainerError
from trainer.paths import ensure_writable_dir
from trainer.train_config import (CONFIG_FILENAME, TrainConfig, check_resumable,
                                  load_saved_config, save_config)

MAX_TO_KEEP = 3


@dataclasses.dataclass
class TrainState:
    """Every variable a resume needs; the checkpoint's object graph."""

    generator: tf.keras.Model
    discriminator: tf.keras.Model
    ema_generator: tf.keras.Model  # the weight average sampled from (a copy if decay 0)
    g_optimizer: tf.keras.optimizers.Optimizer
    d_optimizer: tf.keras.optimizers.Optimizer
    step: tf.Variable  # int64, optimizer steps taken
    epoch: tf.Variable  # int64, 0-based epoch being trained
    batch_in_epoch: tf.Variable  # int64, batches of `epoch` already trained on
    noise: tf.random.Generator  # draws z inside the train step

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(**{f.name: getattr(self, f.name)
                                      for f in dataclasses.fields(self)})


def build_state(config: TrainConfig) -> TrainState:
    """Fresh networks and optimizers, with every variable created (so restore fills
    them at once instead of deferring)."""
    generator = model.generator_for(config.arch, config.latent_dim, config.generator_width,
                                    config.compute_precision, config.generator_depth)
    # The average is sampled from, so it computes in float32 whatever the training does.
    ema_generator = model.generator_for(config.arch, config.latent_dim,
                                        config.generator_width,
                                        depth=config.generator_depth)
    ema_generator.set_weights(generator.get_weights())
    discriminator = model.discriminator_for(config.arch, config.discriminator_width,
                                            config.compute_precision,
                                            config.discriminator_depth)
    optimizers = []
    for net, rate in ((generator, config.learning_rate),
                      (discriminator, config.discriminator_learning_rate)):
        optimizer = tf.keras.optimizers.Adam(rate, beta_1=config.beta1)
        optimizer.build(net.trainable_variables)
        optimizers.append(optimizer)
    return TrainState(
        generator=generator, discriminator=discriminator, ema_generator=ema_generator,
        g_optimizer=optimizers[0], d_optimizer=optimizers[1],
        step=tf.Variable(0, dtype=tf.int64, trainable=False, name="step"),
        epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
        batch_in_epoch=tf.Variable(0, dtype=tf.int64, trainable=False,
                                   name="batch_in_epoch"),
        noise=tf.random.Generator.from_seed(config.seed))


def restore_or_initialize(state: TrainState, config: TrainConfig):
    """Resumes from the newest readable checkpoint or prepares a fresh folder; the one
    path for both.

    Takes the folder's lock before reading or deleting anything in it; the caller
    releases it with `release` when the run ends (process exit releases it too).

    Returns:
      The tf.train.CheckpointManager that saves `state` into config.checkpoint_dir.

    Raises:
      TrainerError: another run holds the folder; resuming with no readable checkpoint
        or another architecture; or starting fresh over existing checkpoints without
        --overwrite.
    """
    directory = config.checkpoint_dir
    if config.continue_train and not os.path.isdir(directory):
        _raise_nothing_to_resume(directory)
    ensure_writable_dir(directory, "--checkpoint-dir")
    lock.acquire(directory)  # first: a live run's folder is refused as in use
    try:
        if config.continue_train:
            if not checkpoint_prefixes(directory):
                _raise_nothing_to_resume(directory)
            check_resumable(load_saved_config(directory), dataclasses.asdict(config))
        else:
            _refuse_or_delete(directory, config.overwrite)
        manager = tf.train.CheckpointManager(state.checkpoint(), directory,
                                             max_to_keep=MAX_TO_KEEP)
        if config.continue_train:
            restored = restore_newest(manager.checkpoint, directory)
            logging.info("resumed from step %d (epoch %d) of %s", int(state.step),
                         int(state.epoch) + 1, restored)
        save_config(config, directory)
    except Exception:
        lock.release(directory)  # this run will not start: let others have the folder
        raise
    return manager


def _raise_nothing_to_resume(directory):
    raise TrainerError(f"--continue-train: no checkpoint in {directory!r} to resume; "
                       "drop --continue-train to start fresh, or pass the "
                       "--checkpoint-dir of the run to resume")


def release(manager: tf.train.CheckpointManager) -> None:
    """Ends the run's hold on its checkpoint folder, so another run may write it."""
    lock.release(manager.directory)


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
        reason = (err.strerror if isinstance(err, OSError) else err.message) or err
        raise TrainerError(
            f"could not write the step {step} checkpoint in {manager.directory!r} "
            f"({reason}); the last good checkpoint, {previous}, is intact. Free space or "
            "fix the folder, then resume with --continue-train True") from err


def checkpoint_prefixes(directory: str) -> list:
    """Path prefixes of the checkpoints the `checkpoint` file lists, newest first."""
    state = tf.train.get_checkpoint_state(directory) if os.path.isdir(directory) else None
    return list(reversed(state.all_model_checkpoint_paths)) if state else []


def restore_newest(checkpoint: tf.train.Checkpoint, directory: str,
                   partial: bool = False) -> str:
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
            logging.warning("checkpoint %s is damaged or unreadable (%s); skipping it",
                            _damaged_file(prefix), reason)
        except (AssertionError, ValueError) as err:
            raise TrainerError(
                f"{prefix} does not fit the networks its folder's {CONFIG_FILENAME} "
                f"describes ({err}); the folder mixes runs: use the folder a run wrote, "
                "or start fresh with another --checkpoint-dir") from err
    raise TrainerError(
        f"no checkpoint in {directory!r} can be restored (tried "
        f"{', '.join(os.path.basename(p) for p in prefixes) or 'none'}); start a fresh run "
        "with another --checkpoint-dir, or --overwrite to replace them")


# What a missing, truncated or corrupt checkpoint file raises (a short data file raises
# IndexError from TensorFlow's reader); a shape mismatch raises ValueError instead.
_DAMAGED = (tf.errors.OpError, IndexError)


def _damaged_file(prefix):
    """The file of checkpoint `prefix` at fault: its .index if unreadable, else its data."""
    try:
        tf.train.load_checkpoint(prefix)  # reads only the .index
    except _DAMAGED + (ValueError,):
        return prefix + ".index"
    data = sorted(glob.glob(glob.escape(prefix) + ".data-*"))
    return ", ".join(data) or prefix + ".data-00000-of-00001"


def _refuse_or_delete(directory, overwrite):
    """Refuses to start fresh over checkpoints, or deletes them with --overwrite."""
    found = _checkpoint_files(directory)
    if found and not overwrite:
        newest = (checkpoint_prefixes(directory) or ["partial files"])[0]
        raise TrainerError(
            f"{directory!r} already holds checkpoints ({newest}); pass --continue-train "
            "True to resume them, another --checkpoint-dir, or --overwrite to replace them")
    if found:
        _delete_checkpoints(directory)


def _checkpoint_files(directory):
    """Checkpoint files and the `checkpoint` list; not config.json or the lock file."""
    return glob.glob(os.path.join(glob.escape(directory), "ckpt-*")) + glob.glob(
        os.path.join(glob.escape(directory), "checkpoint"))


def _delete_checkpoints(directory):
    logging.warning("--overwrite: deleting the checkpoints in %s", directory)
    for path in _checkpoint_files(directory) + [os.path.join(directory, CONFIG_FILENAME)]:
        if os.path.isdir(path):  # ckpt-N_temp/, left by a write that was interrupted
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def load_sampler(checkpoint_dir: str):
    """The generator of the newest readable checkpoint in `checkpoint_dir`, for sampling,
    with batch-norm statistics measured for its own weights
    (model.set_standing_statistics).

    Reads without taking the folder's lock, so a live run can be sampled.

    Returns:
      (generator, config): the averaged generator when the run kept one, and the
      run's saved config.

    Raises:
      TrainerError: no checkpoint there, none that reads, or one this config cannot
        rebuild.
    """
    generator, config = _load_network(
        checkpoint_dir, "ema_generator", lambda config: model.generator_for(
            config.arch, config.latent_dim, config.generator_width,
            depth=config.generator_depth))
    model.set_standing_statistics(
        generator, latent.standing_batch(config.latent_dim, config.latent_distribution))
    return generator, config


def load_discriminator(checkpoint_dir: str):
    """(discriminator, config) of the newest readable checkpoint, as load_sampler."""
    return _load_network(checkpoint_dir, "discriminator",
                         lambda config: model.discriminator_for(
                             config.arch, config.discriminator_width,
                             depth=config.discriminator_depth))


def _load_network(checkpoint_dir, name, build):
    if not checkpoint_prefixes(checkpoint_dir):
        raise TrainerError(
            f"no checkpoint in {checkpoint_dir!r}: train one with `python -m trainer.task "
            "--data-dir DIR`, or pass --checkpoint-dir with a trained model's folder")
    config = load_saved_config(checkpoint_dir)
    network = build(config)
    restore_newest(tf.train.Checkpoint(**{name: network}), checkpoint_dir, partial=True)
    return network, config
