"""Training state and its checkpoints: one restore-or-initialize path, resume and refusal.

A checkpoint holds both networks, the generator's moving average, both optimizers, the
global step, the epoch, the batch inside the epoch and the noise generator's state, so
a resumed run continues exactly where the interrupted one stopped.

A run holds its folder's lock (trainer.lock) from restore_or_initialize until `release`
or its exit, so two runs never write one folder. Resuming or sampling skips a damaged
newest checkpoint for the one before it, and a failed save leaves the previous ones as
they were.

Every file goes through tf.io.gfile, so the folder may be local, on gs:// or ram://.
`publish_model` copies the newest checkpoint to a folder of its own (Vertex AI's
AIP_MODEL_DIR), which --sample and --evaluate read as they read a checkpoint folder.
"""

import dataclasses
import logging
import os

import tensorflow as tf

from trainer import latent, lock, model, paths
from trainer.errors import TrainerError
from trainer.paths import ensure_writable_dir
from trainer.train_config import (
    CONFIG_FILENAME,
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

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
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
    generator = model.generator_for(
        config.arch,
        config.latent_dim,
        config.generator_width,
        config.compute_precision,
        config.generator_depth,
        synchronized=True,
        num_classes=config.num_classes,
    )
    ema_generator = model.generator_for(
        config.arch,
        config.latent_dim,
        config.generator_width,
        depth=config.generator_depth,
        num_classes=config.num_classes,
    )
    ema_generator.set_weights(generator.get_weights())
    discriminator = model.discriminator_for(
        config.arch,
        config.discriminator_width,
        config.compute_precision,
        config.discriminator_depth,
        synchronized=True,
        num_classes=config.num_classes,
        projection=config.projection,
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
    )


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
            check_resumable(load_saved_config(directory), dataclasses.asdict(config))
        else:
            _refuse_or_delete(directory, config.overwrite)
        manager = tf.train.CheckpointManager(state.checkpoint(), directory, max_to_keep=MAX_TO_KEEP)
        if config.continue_train:
            restored = restore_newest(manager.checkpoint, directory)
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


def _refuse_or_delete(directory, overwrite):
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
    generator, config, _ = load_sampler_with_step(checkpoint_dir)
    return generator, config


def load_sampler_with_step(checkpoint_dir: str):
    """load_sampler, and the step of the checkpoint it read (an export names its version
    after it).

    Returns:
      (generator, config, step): step is the int optimizer step saved in that same
      checkpoint, so a damaged newest checkpoint skipped does not lend its number.
    """
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    generator, config = _load_network(
        checkpoint_dir,
        "ema_generator",
        lambda config: model.generator_for(
            config.arch,
            config.latent_dim,
            config.generator_width,
            depth=config.generator_depth,
            num_classes=config.num_classes,
        ),
        step=step,
    )
    model.set_standing_statistics(
        generator, latent.standing_batch(config.latent_dim, config.latent_distribution)
    )
    return generator, config, int(step.numpy())


def load_discriminator(checkpoint_dir: str):
    """(discriminator, config) of the newest readable checkpoint, as load_sampler."""
    return _load_network(
        checkpoint_dir,
        "discriminator",
        lambda config: model.discriminator_for(
            config.arch,
            config.discriminator_width,
            depth=config.discriminator_depth,
            num_classes=config.num_classes,
            projection=config.projection,
        ),
    )


def _load_network(checkpoint_dir, name, build, **also):
    """(network, config) of the newest readable checkpoint; `also` names more of the
    checkpoint's objects (e.g. step=tf.Variable) to restore alongside it."""
    if not checkpoint_prefixes(checkpoint_dir):
        raise TrainerError(
            f"no checkpoint in {checkpoint_dir!r}: train one with `python -m trainer.task "
            "--data-dir DIR`, or pass --checkpoint-dir with a trained model's folder"
        )
    config = load_saved_config(checkpoint_dir)
    network = build(config)
    restore_newest(tf.train.Checkpoint(**{name: network}, **also), checkpoint_dir, partial=True)
    return network, config


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
        check_resumable(load_saved_config(real), dataclasses.asdict(config))
    elif checkpoint_prefixes(real) and not config.overwrite:
        _refuse_or_delete(real, overwrite=False)  # raises: the chief will refuse too
    manager = restore_or_initialize(
        state,
        dataclasses.replace(config, checkpoint_dir=own_dir, continue_train=False, overwrite=False),
    )
    if config.continue_train:
        restored = restore_newest(manager.checkpoint, real)
        logging.info(
            "resumed from step %d (epoch %d) of %s",
            int(state.step.numpy()),
            int(state.epoch.numpy()) + 1,
            restored,
        )
    return manager
