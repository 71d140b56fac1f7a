"""Training state and its checkpoints: one restore-or-initialize path, resume and refusal.

A checkpoint holds both networks, the generator's moving average, both optimizers, the
global step, the epoch, the batch inside the epoch and the noise generator's state, so
a resumed run continues exactly where the interrupted one stopped.
"""

import dataclasses
import glob
import logging
import os

import tensorflow as tf

from trainer import model
from trainer.errors import TrainerError
from trainer.paths import ensure_writable_dir
from trainer.train_config import (CONFIG_FILENAME, RESUME_LOCKED_FIELDS, TrainConfig,
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
    generator = model.build_generator(config.latent_dim, config.generator_width)
    ema_generator = model.build_generator(config.latent_dim, config.generator_width)
    ema_generator.set_weights(generator.get_weights())
    discriminator = model.build_discriminator(config.discriminator_width)
    optimizers = []
    for net in (generator, discriminator):
        optimizer = tf.keras.optimizers.Adam(config.learning_rate, beta_1=config.beta1)
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
    """Resumes from the latest checkpoint or prepares a fresh folder; the one path for both.

    Returns:
      The tf.train.CheckpointManager that saves `state` into config.checkpoint_dir.

    Raises:
      TrainerError: resuming with no checkpoint or another architecture, or starting
        fresh over existing checkpoints without --overwrite.
    """
    directory = config.checkpoint_dir
    latest = tf.train.latest_checkpoint(directory) if os.path.isdir(directory) else None
    if config.continue_train:
        if latest is None:
            raise TrainerError(f"--continue-train: no checkpoint in {directory!r} to resume; "
                               "drop --continue-train to start fresh, or pass the "
                               "--checkpoint-dir of the run to resume")
        _check_same_architecture(load_saved_config(directory), config)
    elif latest is not None or _checkpoint_files(directory):
        if not config.overwrite:
            raise TrainerError(
                f"{directory!r} already holds checkpoints ({latest or 'partial files'}); "
                "pass --continue-train True to resume them, another --checkpoint-dir, or "
                "--overwrite to replace them")
        _delete_checkpoints(directory)
    ensure_writable_dir(directory, "--checkpoint-dir")
    manager = tf.train.CheckpointManager(state.checkpoint(), directory,
                                         max_to_keep=MAX_TO_KEEP)
    if config.continue_train:
        manager.checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("resumed from step %d (epoch %d) of %s", int(state.step),
                     int(state.epoch) + 1, latest)
    save_config(config, directory)
    return manager


def _check_same_architecture(saved: TrainConfig, config: TrainConfig):
    differing = [f"{name} (checkpoint {getattr(saved, name)}, flags {getattr(config, name)})"
                 for name in RESUME_LOCKED_FIELDS
                 if getattr(saved, name) != getattr(config, name)]
    if differing:
        raise TrainerError("cannot resume: the flags differ from the checkpoint in "
                           + ", ".join(differing) + "; drop those flags, or start a fresh "
                           "run with another --checkpoint-dir")


def _checkpoint_files(directory):
    return glob.glob(os.path.join(directory, "ckpt-*")) + glob.glob(
        os.path.join(directory, "checkpoint"))


def _delete_checkpoints(directory):
    logging.warning("--overwrite: deleting the checkpoints in %s", directory)
    for path in _checkpoint_files(directory) + [os.path.join(directory, CONFIG_FILENAME)]:
        if os.path.exists(path):
            os.remove(path)


def load_sampler(checkpoint_dir: str):
    """The generator of the latest checkpoint in `checkpoint_dir`, for sampling.

    Returns:
      (generator, config): the averaged generator when the run kept one, and the
      run's saved config.

    Raises:
      TrainerError: no checkpoint there, or one this config cannot rebuild.
    """
    latest = (tf.train.latest_checkpoint(checkpoint_dir)
              if os.path.isdir(checkpoint_dir) else None)
    if latest is None:
        raise TrainerError(
            f"no checkpoint in {checkpoint_dir!r}: train one with `python -m trainer.task "
            "--data-dir DIR`, or pass --checkpoint-dir with a trained model's folder")
    config = load_saved_config(checkpoint_dir)
    generator = model.build_generator(config.latent_dim, config.generator_width)
    try:
        tf.train.Checkpoint(ema_generator=generator).read(latest).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise TrainerError(f"{latest} does not match its {CONFIG_FILENAME} ({err}); "
                           "the folder mixes runs: use the folder a run wrote") from err
    return generator, config
