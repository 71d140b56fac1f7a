"""What a training run holds and how it starts: the training state, built fresh, then
restored or initialized through one path that takes the folder's lock.

A checkpoint holds both networks, the generator's moving average, both optimizers, the
global step, the epoch, the batch inside the epoch, the noise generator's state and the
wall-clock time the run has spent, so a resumed run continues exactly where the
interrupted one stopped (and a --time-budget run spends only what is left).

A run holds its folder's lock (trainer.lock) from restore_or_initialize until `release`
or its exit, so two runs never write one folder. The folder's files themselves (save,
restore, refuse or delete) are trainer.checkpoints'.
"""

import dataclasses
import logging

import tensorflow as tf

from trainer import lock, model
from trainer.checkpoints import checkpoint_prefixes, refuse_or_delete, restore_newest
from trainer.errors import TrainerError
from trainer.paths import ensure_writable_dir
from trainer.train_config import (
    TrainConfig,
    check_resumable,
    load_saved_config,
    save_config,
)

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
    elapsed: tf.Variable  # float64, wall-clock seconds the run has spent, every process

    def checkpoint(self, elapsed: bool = True) -> tf.train.Checkpoint:
        """The object graph saved; without `elapsed`, what every checkpoint has
        (checkpoints written before the run's time was kept lack it)."""
        return tf.train.Checkpoint(
            **{
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if elapsed or f.name != "elapsed"
            }
        )


def build_state(config: TrainConfig) -> TrainState:
    """Fresh networks and optimizers, with every variable created (so restore fills
    them at once instead of deferring).

    Call it inside the run's `strategy.scope()`, so each variable is mirrored on every
    replica. The optimizers' slots are built here, before the first step is traced:
    Adam creating them lazily inside `strategy.run` fails under MirroredStrategy
    (keras-team/keras#23085). The trained networks' batch norm is synchronized: over
    every replica's share of the batch, and on one device the same arithmetic, so N
    replicas train as one device does (on one device it measured no slower)."""
    generator = model.build(config, "generator", config.compute_precision, synchronized=True)
    ema_generator = model.build(config, "generator")
    ema_generator.set_weights(generator.get_weights())
    discriminator = model.build(
        config, "discriminator", config.compute_precision, synchronized=True
    )
    optimizers = []
    for net, rate in (
        (generator, config.learning_rate),
        (discriminator, config.discriminator_learning_rate),
    ):
        optimizer = tf.keras.optimizers.Adam(rate, beta_1=config.beta1)
        optimizer.build(net.trainable_variables)
        optimizers.append(optimizer)
    return TrainState(
        generator=generator,
        discriminator=discriminator,
        ema_generator=ema_generator,
        g_optimizer=optimizers[0],
        d_optimizer=optimizers[1],
        step=tf.Variable(0, dtype=tf.int64, trainable=False, name="step"),
        epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
        batch_in_epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch"),
        noise=tf.random.Generator.from_seed(config.seed),
        elapsed=tf.Variable(0.0, dtype=tf.float64, trainable=False, name="elapsed"),
    )


def restore(state: TrainState, directory: str) -> str:
    """Restores the newest readable checkpoint in `directory` into `state`, its time
    spent too where it has one (else 0); returns its path prefix."""
    restored = restore_newest(state.checkpoint(elapsed=False), directory)
    tf.train.Checkpoint(elapsed=state.elapsed).restore(restored).expect_partial()
    return restored


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
    if config.continue_train and not tf.io.gfile.isdir(directory):
        _raise_nothing_to_resume(directory)
    ensure_writable_dir(directory, "--checkpoint-dir")
    lock.acquire(directory)  # first: a live run's folder is refused as in use
    try:
        if config.continue_train:
            if not checkpoint_prefixes(directory):
                _raise_nothing_to_resume(directory)
            check_resumable(load_saved_config(directory), config)
        else:
            refuse_or_delete(directory, config.overwrite)
        manager = tf.train.CheckpointManager(state.checkpoint(), directory, max_to_keep=MAX_TO_KEEP)
        if config.continue_train:
            restored = restore(state, directory)
            logging.info(
                "resumed from step %d (epoch %d) of %s",
                int(state.step.numpy()),
                int(state.epoch.numpy()) + 1,
                restored,
            )
        save_config(config, directory)
    except Exception:
        lock.release(directory)  # this run will not start: let others have the folder
        raise
    return manager


def _raise_nothing_to_resume(directory):
    raise TrainerError(
        f"--continue-train: no checkpoint in {directory!r} to resume; "
        "drop --continue-train to start fresh, or pass the "
        "--checkpoint-dir of the run to resume"
    )


def release(manager: tf.train.CheckpointManager) -> None:
    """Ends the run's hold on its checkpoint folder, so another run may write it."""
    lock.release(manager.directory)


def restore_for_worker(state: TrainState, config: TrainConfig, own_dir: str):
    """restore_or_initialize for a worker other than the chief of a multi-worker run: it
    reads the run's checkpoints in config.checkpoint_dir (the chief's, which it never
    writes) and saves its own copies into `own_dir`, a folder it throws away.

    Returns:
      The tf.train.CheckpointManager that saves `state` into own_dir.

    Raises:
      TrainerError: as restore_or_initialize would for the chief's folder, so a worker
        refuses what the chief refuses instead of waiting for it.
    """
    real = config.checkpoint_dir
    if config.continue_train:
        if not checkpoint_prefixes(real):
            _raise_nothing_to_resume(real)
        check_resumable(load_saved_config(real), config)
    elif checkpoint_prefixes(real) and not config.overwrite:
        refuse_or_delete(real, overwrite=False)  # raises: the chief will refuse too
    manager = restore_or_initialize(
        state,
        dataclasses.replace(config, checkpoint_dir=own_dir, continue_train=False, overwrite=False),
    )
    if config.continue_train:
        restored = restore(state, real)
        logging.info(
            "resumed from step %d (epoch %d) of %s",
            int(state.step.numpy()),
            int(state.epoch.numpy()) + 1,
            restored,
        )
    return manager
