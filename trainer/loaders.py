"""The inference loaders: a trained network and its config from the newest readable
checkpoint, for sampling, export, evaluation and the probe.

They read without taking the folder's lock, so a live run can be sampled, and skip a
damaged newest checkpoint for the one before it (trainer.checkpoints.restore_newest).
"""

import tensorflow as tf

from trainer import latent, model
from trainer.checkpoints import checkpoint_prefixes, restore_newest
from trainer.errors import TrainerError
from trainer.train_config import load_saved_config


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
        lambda config: model.build(config, "generator"),
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
        lambda config: model.build(config, "discriminator"),
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
