"""The train step and the training loop: the only place that sequences I/O."""

import itertools
import logging
import math
import signal
import threading
import time

import numpy as np
import tensorflow as tf

from trainer import animation, checkpoints, data, latent, model
from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.evaluation import quality
from trainer.paths import ensure_writable_dir
from trainer.progress import EpochProgress
from trainer.summaries import Summaries
from trainer.train_config import TrainConfig

GRID_SIZE = 64  # fixed-noise images in each TensorBoard grid (8x8)
LOGGED = ("d_loss", "g_loss", "d_real", "d_fake", "images_per_sec")  # in the log lines


def make_train_step(state: checkpoints.TrainState, config: TrainConfig):
    """Builds the compiled step that updates both networks on one batch of real images.

    Both networks see the same generated batch and are updated simultaneously from one
    forward pass. `state.noise` (a tf.random.Generator) draws z, so its state, saved in
    the checkpoint, makes a resumed run draw the same z.

    Returns:
      A tf.function (real_images, regularize) -> metrics. real_images: float32
      (B, 28, 28, 1) in [-1, 1]; regularize: Python bool, True adds the R1 penalty
      weighted by config.r1_interval (the loop passes True every r1_interval steps; each
      value compiles once). Metrics: a dict of float32 scalars d_loss, g_loss, d_real
      and d_fake (mean sigmoid outputs), pixels/{generated,real}_{mean,std}, and the
      float32 (B,) vectors d_real_probs and d_fake_probs, D's sigmoid outputs.
    """
    generator, discriminator = state.generator, state.discriminator
    # The average's batch-norm statistics are measured for its own weights where it is
    # used (model.set_standing_statistics), not copied from the raw generator's.
    ema_pairs = list(zip(state.ema_generator.trainable_variables,
                         generator.trainable_variables))
    r1_weight = 0.5 * config.r1_gamma * config.r1_interval

    @tf.function(jit_compile=config.xla)
    def train_step(real_images, regularize):
        z = latent.draw_tf(state.noise, [tf.shape(real_images)[0], config.latent_dim],
                           config.latent_distribution)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake_images = generator(z, training=True)
            real_logits = discriminator(real_images, training=True)
            fake_logits = discriminator(fake_images, training=True)
            g_loss = model.generator_loss(fake_logits)
            d_loss = model.discriminator_loss(real_logits, fake_logits,
                                              config.label_smoothing)
            d_total = d_loss
            if regularize and config.r1_gamma > 0:
                d_total += r1_weight * model.r1_penalty(discriminator, real_images)
        state.g_optimizer.apply_gradients(zip(
            g_tape.gradient(g_loss, generator.trainable_variables),
            generator.trainable_variables))
        state.d_optimizer.apply_gradients(zip(
            d_tape.gradient(d_total, discriminator.trainable_variables),
            discriminator.trainable_variables))
        decay = ema_decay_at(state.step, config.ema_decay)
        for average, weight in ema_pairs:
            average.assign(decay * average + (1.0 - decay) * weight)
        real_probs, fake_probs = tf.sigmoid(real_logits[:, 0]), tf.sigmoid(fake_logits[:, 0])
        return {"d_loss": d_loss, "g_loss": g_loss,
                "d_real": tf.reduce_mean(real_probs), "d_fake": tf.reduce_mean(fake_probs),
                # Pixel statistics: a generator drifting off MNIST's ink/background
                # balance shows here before it shows in the grids.
                "pixels/generated_mean": tf.reduce_mean(fake_images),
                "pixels/generated_std": tf.math.reduce_std(fake_images),
                "pixels/real_mean": tf.reduce_mean(real_images),
                "pixels/real_std": tf.math.reduce_std(real_images),
                "d_real_probs": real_probs, "d_fake_probs": fake_probs}

    return train_step


def ema_decay_at(step, ema_decay: float):
    """The weight average's decay after `step` updates: min(ema_decay, (1 + step) /
    (10 + step)), tf.train.ExponentialMovingAverage's ramp, so the average forgets the
    random initial weights within a few hundred steps instead of thousands."""
    step = tf.cast(step, tf.float32)
    return tf.minimum(ema_decay, (1.0 + step) / (10.0 + step))


def learning_rate_scale(step: int, total: int, decay_steps: int) -> float:
    """The factor on both learning rates for the update after `step` of `total` steps:
    1, then falling linearly over the last `decay_steps` updates (all of them when the
    budget is shorter) to 1 / decay_steps on the final one (0 decay_steps: always 1)."""
    if decay_steps <= 0:
        return 1.0
    decay_steps = min(decay_steps, total)  # a short run still starts at the full rate
    return min(1.0, (total - step) / decay_steps)


def _set_learning_rates(state, config, total, per_epoch) -> float:
    """Sets both optimizers' rates for the next update from the config and the schedule,
    so a resume uses the flags' rates, not the ones stored in the checkpoint. Returns
    the generator's."""
    scale = learning_rate_scale(int(state.step), total, config.lr_decay_epochs * per_epoch)
    state.g_optimizer.learning_rate = config.learning_rate * scale
    state.d_optimizer.learning_rate = config.discriminator_learning_rate * scale
    return config.learning_rate * scale


def run(config: TrainConfig, images=None) -> dict:
    """Trains toward config's step budget, resuming if config.continue_train.

    Args:
      config: the resolved configuration.
      images: uint8 (N, 28, 28) training images; None loads them from config.data_dir.

    Returns:
      {"step", "epoch", "interrupted", "checkpoint", and the last metrics}.
    """
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    tf.keras.utils.set_random_seed(config.seed)
    ensure_writable_dir(config.log_dir, "--log-dir")  # fail before the slow work
    if images is None:
        images, _ = data.load_mnist(config.data_dir, "train")
    per_epoch = data.steps_per_epoch(len(images), config.batch_size)
    state = checkpoints.build_state(config)
    manager = checkpoints.restore_or_initialize(state, config)  # takes the folder's lock
    try:
        return _train(config, state, manager, images, per_epoch)
    finally:
        checkpoints.release(manager)


def _train(config, state, manager, images, per_epoch) -> dict:
    """The loop: steps toward the budget with summaries, samples and checkpoints on cadence."""
    total = config.train_steps or config.num_epochs * per_epoch
    num_epochs = math.ceil(total / per_epoch)
    train_step = make_train_step(state, config)
    summaries = Summaries(config.log_dir)
    probe = quality.probe_for(config)
    fixed_z = latent.draw(np.random.default_rng(config.seed), GRID_SIZE, config.latent_dim,
                          config.latent_distribution)  # same across resumes
    if int(state.step) == 0:
        summaries.grid(0, "real_images", images[:GRID_SIZE])
        summaries.text(0, "config", config.to_json())
    logging.info("training to step %d (%d epochs of %d steps), checkpoints in %s",
                 total, num_epochs, per_epoch, config.checkpoint_dir)
    metrics, unlogged = {}, None
    with _StopOnSignal() as stop:
        while int(state.step) < total and not stop.requested:
            metrics, unlogged = _train_epoch(config, state, train_step, images, total,
                                             num_epochs, per_epoch, summaries, manager,
                                             stop)
            if int(state.batch_in_epoch) == per_epoch:
                state.epoch.assign_add(1)
                state.batch_in_epoch.assign(0)
                _epoch_end_summaries(summaries, state, config, fixed_z, probe)
                _save(manager, state)
        if unlogged:  # the run's last step, off the --log-freq cadence: its curve point
            _log_step(summaries, total, *unlogged)
        if not _saved(manager, int(state.step)):
            _save(manager, state)  # first, so a stop request is honoured at once
        if int(state.batch_in_epoch) != 0:  # a mid-epoch end: the budget or a signal
            # A stop skips the quality probe: seconds a user waiting on Ctrl-C or a
            # scheduler's grace period should not spend.
            _epoch_end_summaries(summaries, state, config, fixed_z,
                                 None if stop.requested else probe)
    summaries.close()
    if stop.requested:
        logging.warning("stopped by %s at step %d; resume with --continue-train True",
                        stop.requested, int(state.step))
    if animation.grid_paths(config.log_dir):  # none if a resume found nothing to train
        logging.info("wrote %s", animation.write_progress_gif(config.log_dir))
    return {"step": int(state.step), "epoch": int(state.epoch),
            "interrupted": stop.requested, "checkpoint": manager.latest_checkpoint, **metrics}


def _train_epoch(config, state, train_step, images, total, num_epochs, per_epoch,
                 summaries, manager, stop):
    """Trains from the saved position to the end of the epoch, the budget or a signal,
    logging every --log-freq steps.

    Returns:
      (metrics of the last step, and _log_step's arguments for that step if it was not
      logged, else None): the run's last step is the last of its last epoch's call.
    """
    start = int(state.batch_in_epoch)
    progress = EpochProgress(int(state.epoch), num_epochs, per_epoch, start,
                             config.batch_size)
    batches = itertools.islice(
        data.epoch_batches(images, config.batch_size, config.seed, int(state.epoch), start),
        total - int(state.step))
    values, unlogged, window_start, window_steps = {}, None, time.perf_counter(), 0
    for batch in batches:
        regularize = int(state.step) % config.r1_interval == 0
        g_rate = _set_learning_rates(state, config, total, per_epoch)
        outputs = train_step(batch, regularize)
        values = {name: float(value) for name, value in outputs.items()
                  if value.shape.rank == 0}
        values["learning_rate"] = g_rate
        _check_finite(values, int(state.step) + 1, manager)
        state.step.assign_add(1)
        state.batch_in_epoch.assign_add(1)
        step, window_steps = int(state.step), window_steps + 1
        progress.update(int(state.batch_in_epoch), values)
        rate = window_steps * config.batch_size / (time.perf_counter() - window_start)
        unlogged = (step, {**values, "images_per_sec": rate}, outputs)
        if step % config.log_freq == 0:
            _log_step(summaries, total, *unlogged)
            unlogged, window_start, window_steps = None, time.perf_counter(), 0
        if step % config.checkpoint_freq == 0:
            _save(manager, state)
        if stop.requested:
            break
    progress.close(values)
    return values, unlogged


def _log_step(summaries, total, step, values, outputs):
    """One step's scalars and D(x), D(G(z)) histograms to TensorBoard, and its log line."""
    summaries.scalars(step, values)
    summaries.histograms(step, {"histograms/d_real": outputs["d_real_probs"],
                                "histograms/d_fake": outputs["d_fake_probs"]})
    logging.info("step %d/%d  %s", step, total, "  ".join(
        f"{k} {v:.4g}" for k, v in values.items() if k in LOGGED))


def _check_finite(values, step, manager):
    bad = {name: value for name, value in values.items() if not math.isfinite(value)}
    if bad:
        raise TrainerError(
            f"non-finite loss at step {step} ({bad}); nothing saved from this step. "
            f"Last good checkpoint: {manager.latest_checkpoint}. Lower --learning-rate "
            "and resume with --continue-train True")


def _epoch_end_summaries(summaries, state, config, fixed_z, probe):
    """The weight average's batch-norm statistics measured for its current weights, then
    the fixed-noise grid, to TensorBoard and as LOG_DIR/grids/step_N.png for the
    training animation, and, when a probe is set, the quality figures."""
    step = int(state.step)
    model.set_standing_statistics(state.ema_generator, latent.standing_batch(
        config.latent_dim, config.latent_distribution))
    pixels = image_utils.to_uint8(state.ema_generator(fixed_z, training=False))
    picture = summaries.grid(step, "generated_images", pixels)
    animation.save_grid(picture, summaries.log_dir, step)
    if probe is not None:
        quality = probe(state.ema_generator)
        summaries.scalars(step, {f"eval/{name}": value for name, value in quality.items()})
        logging.info("step %d quality: Frechet distance %.3f, classifier score %.3f", step,
                     quality["frechet_distance"], quality["classifier_score"])
    summaries.flush()


def _saved(manager, step: int) -> bool:
    """Whether the newest checkpoint is of `step` (so stopping there writes nothing)."""
    return (manager.latest_checkpoint or "").endswith(f"ckpt-{step}")


def _save(manager, state) -> int:
    step = int(state.step)
    path = checkpoints.save(manager, step)
    logging.info("saved checkpoint %s", path)
    return step


class _StopOnSignal:
    """Turns the first SIGINT or SIGTERM into a request to save and stop; a second
    SIGINT interrupts at once."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        logging.warning("%s received: saving a checkpoint at the current step, then "
                        "stopping (Ctrl-C again to abort)", self.requested)

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False
