"""The train step and the training loop: the only place that sequences I/O."""

import dataclasses
import itertools
import logging
import math
import signal
import threading
import time

import numpy as np
import tensorflow as tf

from trainer import animation, checkpoints, data, distribute, latent, losses, model, train_state
from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.evaluation import quality
from trainer.paths import ensure_writable_dir
from trainer.progress import EpochProgress
from trainer.summaries import Summaries
from trainer.train_config import TrainConfig

GRID_SIZE = 64  # fixed-noise images in each TensorBoard grid (8x8)
LOGGED = (
    "d_loss",
    "g_loss",
    "mode_seeking",
    "d_real",
    "d_fake",
    "d_mismatch",
    "images_per_sec",
)  # in the log lines (mode_seeking, d_mismatch where on)


def make_train_step(
    state: train_state.TrainState,
    config: TrainConfig,
    strategy: tf.distribute.Strategy = None,
    pair_bounds=None,
):
    """Builds the compiled step that updates both networks on one global batch.

    Both networks see the same generated batch and are updated simultaneously from one
    forward pass, each by its loss terms (trainer.losses) weighted by the config.
    `state.noise` (a tf.random.Generator) draws z for the global batch, so its state,
    saved in the checkpoint, makes a resumed run draw the same z. Under a strategy of N
    replicas each trains on its 1/N share of the images and of z, its losses averaged
    over the global batch (tf.nn.compute_average_loss) and the optimizers summing the
    replicas' gradients: the step one device would take.

    A conditional run's generator draws, for each image of the batch, that image's
    class. pair_bounds, float32 (num_classes,) or (1,) for an unconditional run
    (data.pair_distances), caps the mode-seeking term per pair; None leaves it uncapped.

    Returns:
      A tf.function (real_images, regularize, stop=None, labels=None) -> metrics.
      real_images: float32 (B, H, W, C) in [-1, 1], or each replica's share of them
      (distribute_batch); regularize: Python bool, True adds the R1 term (the loop
      passes True every r1_interval steps; each value compiles once); stop: float32
      scalar, 1 where this process was asked to stop; labels: int32 (B,) classes of
      real_images (shared like them), for a conditional run only.
      Metrics: float32 scalars, each loss term's mean but R1's (g_loss and d_loss are
      the adversarial parts), d_real, d_fake and d_mismatch (D's mean sigmoid outputs),
      pixels/{generated,real}_{mean,std}, stop (the sum of every replica's stop, so every
      worker stops at the same step), and the float32 (B,) vectors d_real_probs and
      d_fake_probs.
    """
    strategy = strategy or tf.distribute.get_strategy()
    term_weights = losses.weights(config)
    bounds = None if pair_bounds is None else tf.constant(pair_bounds, tf.float32)
    global_batch = config.batch_size
    local_batch = distribute.check_batch(global_batch, strategy.num_replicas_in_sync)

    def average(per_image):  # this replica's share of the mean over the global batch
        return tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)

    def replica_step(images, labels, noise, regularize, stop):
        first = tf.distribute.get_replica_context().replica_id_in_sync_group * local_batch
        noise = {name: rows[first : first + local_batch] for name, rows in noise.items()}
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            forward = _forward(state, config, images, labels, noise, bounds)
            g_terms = losses.generator_terms(forward, config)
            g_loss, g_means = losses.total(g_terms, term_weights, average)
            d_terms = losses.discriminator_terms(forward, config, regularize)
            d_loss, d_means = losses.total(d_terms, term_weights, average)
        _apply(
            state.g_optimizer,
            g_tape.gradient(g_loss, state.generator.trainable_variables),
            state.generator,
        )
        _apply(
            state.d_optimizer,
            d_tape.gradient(d_loss, state.discriminator.trainable_variables),
            state.discriminator,
        )
        d_means.pop("r1", None)  # taken on some steps only: no curve to draw
        probs = _probabilities(forward)
        shares = {**g_means, **d_means, **_pixel_moments(forward, average)}
        shares.update({name: average(value) for name, value in probs.items()})
        return shares, probs["d_real"], probs["d_fake"], tf.identity(stop)  # one per replica

    @tf.function(jit_compile=config.xla)
    def train_step(real_images, regularize, stop=None, labels=None):
        if config.conditional and labels is None:
            raise ValueError("a conditional run's step needs the batch's labels")
        stop = tf.zeros([]) if stop is None else stop
        noise = _draw_noise(state.noise, config)
        shares, real_probs, fake_probs, stop = strategy.run(
            replica_step, args=(real_images, labels, noise, regularize, stop)
        )
        metrics = _reduce(strategy, shares)
        _update_average(state, config)
        return {
            **metrics,  # reduce and gather reach every worker's replicas
            "stop": strategy.reduce(tf.distribute.ReduceOp.SUM, stop, axis=None),
            "d_real_probs": strategy.gather(real_probs, axis=0),
            "d_fake_probs": strategy.gather(fake_probs, axis=0),
        }

    return train_step


def _draw_noise(noise: tf.random.Generator, config: TrainConfig) -> dict:
    """The global batch's random draws: z; with the mode-seeking term a second z for the
    same classes; with the mismatch term each real image's wrong-class offset (1 to
    num_classes - 1). Drawn in this order, so a seed gives the same draws."""
    shape = [config.batch_size, config.latent_dim]
    draws = {"z": latent.draw_tf(noise, shape, config.latent_distribution)}
    if config.mode_seeking > 0:
        draws["paired_z"] = latent.draw_tf(noise, shape, config.latent_distribution)
    if config.mismatch > 0:
        draws["shifts"] = noise.uniform([config.batch_size], 1, config.num_classes, tf.int32)
    return draws


def _forward(state, config, images, labels, noise, bounds) -> losses.Forward:
    """The networks on this replica's batch: what the loss terms read (losses.Forward).
    Batch norm's moving statistics update in call order, which stays fixed."""
    generator, discriminator = state.generator, state.discriminator
    fake = generator(model.inputs(noise["z"], labels), training=True)
    extra = {}
    if "paired_z" in noise:  # the same classes from a second noise batch
        extra["paired"] = generator(model.inputs(noise["paired_z"], labels), training=True)
        extra["bound"] = bounds  # one for every pair, or each pair's class's:
        if bounds is not None and labels is not None:
            extra["bound"] = tf.gather(bounds, labels)
    if "shifts" in noise:  # real images with wrong classes are fake too
        wrong = (labels + noise["shifts"]) % config.num_classes
        extra["mismatched_logits"] = discriminator(model.inputs(images, wrong), training=True)
    return losses.Forward(
        images=images,
        labels=labels,
        fake=fake,
        real_logits=discriminator(model.inputs(images, labels), training=True),
        fake_logits=discriminator(model.inputs(fake, labels), training=True),
        discriminator=discriminator,
        z=noise["z"],
        paired_z=noise.get("paired_z"),
        **extra,
    )


def _apply(optimizer, gradients, network) -> None:
    # Keras optimizers sum the replicas' gradients before applying them.
    optimizer.apply_gradients(zip(gradients, network.trainable_variables))


def _probabilities(forward: losses.Forward) -> dict:
    """D's sigmoid outputs, float32 (B,) each: on real, generated and (where the
    mismatch term is on) mismatched images."""
    logits = {"d_real": forward.real_logits, "d_fake": forward.fake_logits}
    if forward.mismatched_logits is not None:
        logits["d_mismatch"] = forward.mismatched_logits
    return {name: tf.sigmoid(value[:, 0]) for name, value in logits.items()}


def _pixel_moments(forward: losses.Forward, average) -> dict:
    """Mean and mean square of generated and real pixels: a generator drifting off the
    data's ink/background balance shows here before it shows in the grids."""
    moments = {}
    for name, pixels in (("generated", forward.fake), ("real", forward.images)):
        moments[f"pixels/{name}_mean"] = average(tf.reduce_mean(pixels, [1, 2, 3]))
        moments[f"pixels/{name}_square"] = average(tf.reduce_mean(tf.square(pixels), [1, 2, 3]))
    return moments


def _reduce(strategy, shares: dict) -> dict:
    """The replicas' shares summed into the global batch's means; pixel mean squares
    turned into standard deviations."""
    metrics = {
        name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
        for name, value in shares.items()
    }
    for name in ("generated", "real"):
        square = metrics.pop(f"pixels/{name}_square")
        mean = metrics[f"pixels/{name}_mean"]
        metrics[f"pixels/{name}_std"] = tf.sqrt(tf.maximum(square - tf.square(mean), 0.0))
    return metrics


def _update_average(state, config) -> None:
    """One step of the generator's weight average, the same on every replica. Its
    batch-norm statistics are measured for its own weights where it is used
    (model.set_standing_statistics), not copied from the raw generator's."""
    decay = ema_decay_at(state.step, config.ema_decay)
    pairs = zip(state.ema_generator.trainable_variables, state.generator.trainable_variables)
    for average_weight, weight in pairs:
        average_weight.assign(decay * average_weight + (1.0 - decay) * weight)


def distribute_batch(strategy: tf.distribute.Strategy, batch: tf.Tensor):
    """Each replica's rows of the global batch `batch` (B, ...), placed on its device:
    replica i of N takes rows [i B/N, (i + 1) B/N), as it takes those rows of z."""
    if strategy.num_replicas_in_sync == 1:
        return batch
    share = batch.shape[0] // strategy.num_replicas_in_sync
    return strategy.experimental_distribute_values_from_function(
        lambda context: batch[
            context.replica_id_in_sync_group * share : (context.replica_id_in_sync_group + 1)
            * share
        ]
    )


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
    scale = learning_rate_scale(int(state.step.numpy()), total, config.lr_decay_epochs * per_epoch)
    state.g_optimizer.learning_rate = config.learning_rate * scale
    state.d_optimizer.learning_rate = config.discriminator_learning_rate * scale
    return config.learning_rate * scale


def run(
    config: TrainConfig, images=None, strategy: tf.distribute.Strategy = None, labels=None
) -> dict:
    """Trains toward config's step budget, resuming if config.continue_train.

    Args:
      config: the resolved configuration.
      images: uint8 (N, H, W[, C]) training images; None loads them from config.data_dir.
      strategy: the tf.distribute strategy to train under (trainer.distribute); None
        is the default strategy, one device.
      labels: uint8 (N,) digits of `images`, which a conditional run needs; loaded
        with them when images is None.

    Returns:
      {"step", "epoch", "interrupted", "checkpoint", and the last metrics}.
    """
    strategy = strategy or tf.distribute.get_strategy()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    tf.keras.utils.set_random_seed(config.seed)
    replicas = strategy.num_replicas_in_sync
    distribute.check_batch(config.batch_size, replicas)
    if config.xla and replicas > 1:
        raise TrainerError(
            f"--xla compiles the one-device step; drop it to train on {replicas} replicas"
        )
    chief = distribute.is_chief(strategy)
    with distribute.WorkerFolders(chief) as folders:
        # A worker other than the chief writes its copies where they are thrown away.
        own = dataclasses.replace(
            config,
            checkpoint_dir=folders.path(config.checkpoint_dir, "checkpoints"),
            log_dir=folders.path(config.log_dir, "summary"),
        )
        ensure_writable_dir(own.log_dir, "--log-dir")  # fail before the slow work
        if images is None:
            images, labels = data.load_mnist(config.data_dir, "train")
        if config.conditional and labels is None:
            raise ValueError("a conditional run needs the labels of its images")
        _check_images(images, config.image)
        per_epoch = data.steps_per_epoch(len(images), config.batch_size)
        with strategy.scope():  # every variable, and the checkpoint of them, mirrored
            state = train_state.build_state(config)
            if chief:
                manager = train_state.restore_or_initialize(state, config)  # the lock
            else:
                manager = train_state.restore_for_worker(state, config, own.checkpoint_dir)
        try:
            return _train(
                own,
                state,
                manager,
                (images, labels if config.conditional else None),
                per_epoch,
                strategy,
                chief,
            )
        finally:
            train_state.release(manager)


def _check_images(images, spec) -> None:
    """Raises TrainerError unless `images` are uint8 images of `spec`, as the networks
    built from the config expect."""
    shape = tuple(images.shape[1:])
    if spec.channels == 1 and len(shape) == 2:
        shape += (1,)
    if shape != spec.shape:
        raise TrainerError(
            f"the training images are {images.shape[1:]}, but the run's image spec is "
            f"{spec.shape} (height, width, channels); train on data of that spec"
        )


def pair_bounds_for(config: TrainConfig, images, labels=None):
    """The mode-seeking term's caps (make_train_step's pair_bounds) for a run whose
    config.mode_seeking_bound is "real": how much two real images of a digit differ on
    average, measured on its training images (uint8 (N, H, W[, C]), and labels (N,) for a
    conditional run); else None."""
    if not (config.mode_seeking > 0 and config.mode_seeking_bound == "real"):
        return None
    bounds = data.pair_distances(images, labels, seed=config.seed)
    logging.info(
        "mode-seeking term capped where two images differ as much as two real "
        "ones of their digit do: %s",
        " ".join(f"{digit}:{value:.3f}" for digit, value in enumerate(bounds)),
    )
    return bounds


def _train(config, state, manager, dataset, per_epoch, strategy, chief) -> dict:
    """The loop: steps toward the budget with summaries, samples and checkpoints on
    cadence (the chief's; other workers train and save alongside, nothing more).
    `dataset` is (images, labels), labels None for an unconditional run."""
    images = dataset[0]
    total = config.train_steps or config.num_epochs * per_epoch
    num_epochs = math.ceil(total / per_epoch)
    train_step = make_train_step(state, config, strategy, pair_bounds_for(config, *dataset))
    summaries = Summaries(config.log_dir)
    probe = quality.probe_for(config) if chief else None
    fixed = fixed_inputs(config)  # same across resumes
    if int(state.step.numpy()) == 0:
        summaries.grid(0, "real_images", images[:GRID_SIZE])
        summaries.text(0, "config", config.to_json())
    logging.info(
        "training to step %d (%d epochs of %d steps), checkpoints in %s",
        total,
        num_epochs,
        per_epoch,
        config.checkpoint_dir,
    )

    def epoch_end(probe):  # the chief's grids and figures: other workers' are thrown away
        if chief:
            _epoch_end_summaries(summaries, state, config, fixed, probe)

    metrics, unlogged = {}, None
    with _StopOnSignal(shared=distribute.is_multi_worker(strategy)) as stop:
        while int(state.step.numpy()) < total and not stop.agreed:
            metrics, unlogged = _train_epoch(
                config,
                state,
                train_step,
                dataset,
                total,
                num_epochs,
                per_epoch,
                summaries,
                manager,
                stop,
                strategy,
            )
            if int(state.batch_in_epoch.numpy()) == per_epoch:
                state.epoch.assign_add(1)
                state.batch_in_epoch.assign(0)
                epoch_end(probe)
                _save(manager, state)
        if unlogged:  # the run's last step, off the --log-freq cadence: its curve point
            _log_step(summaries, total, *unlogged)
        if not _saved(manager, int(state.step.numpy())):
            _save(manager, state)  # first, so a stop request is honoured at once
        if int(state.batch_in_epoch.numpy()) != 0:  # a mid-epoch end: the budget or a signal
            # A stop skips the quality probe: seconds a user waiting on Ctrl-C or a
            # scheduler's grace period should not spend.
            epoch_end(None if stop.agreed else probe)
    summaries.close()
    if stop.agreed:
        logging.warning(
            "stopped by %s at step %d; resume with --continue-train True",
            stop.agreed,
            int(state.step.numpy()),
        )
    if chief and animation.grid_paths(config.log_dir):  # none if nothing was trained
        logging.info("wrote %s", animation.write_progress_gif(config.log_dir))
    if chief and config.model_dir and not stop.agreed:  # a finished run's model
        logging.info(
            "published the model to %s",
            checkpoints.publish_model(config.checkpoint_dir, config.model_dir),
        )
    distribute.barrier(strategy)
    return {
        "step": int(state.step.numpy()),
        "epoch": int(state.epoch.numpy()),
        "interrupted": stop.agreed,
        "checkpoint": manager.latest_checkpoint,
        **metrics,
    }


def _train_epoch(
    config,
    state,
    train_step,
    dataset,
    total,
    num_epochs,
    per_epoch,
    summaries,
    manager,
    stop,
    strategy,
):
    """Trains from the saved position to the end of the epoch, the budget or an agreed
    stop, logging every --log-freq steps.

    Returns:
      (metrics of the last step, and _log_step's arguments for that step if it was not
      logged, else None): the run's last step is the last of its last epoch's call.
    """
    start = int(state.batch_in_epoch.numpy())
    progress = EpochProgress(
        int(state.epoch.numpy()), num_epochs, per_epoch, start, config.batch_size
    )
    batches = itertools.islice(
        data.epoch_batches(
            dataset[0],
            config.batch_size,
            config.seed,
            int(state.epoch.numpy()),
            start,
            labels=dataset[1],
        ),
        total - int(state.step.numpy()),
    )
    values, unlogged, window_start, window_steps = {}, None, time.perf_counter(), 0
    for real, labels in batches:
        regularize = int(state.step.numpy()) % config.r1_interval == 0
        g_rate = _set_learning_rates(state, config, total, per_epoch)
        outputs = train_step(
            distribute_batch(strategy, real),
            regularize,
            tf.constant(1.0 if stop.requested else 0.0),
            labels=None if labels is None else distribute_batch(strategy, labels),
        )
        values = {
            name: float(value)
            for name, value in outputs.items()
            if value.shape.rank == 0 and name != "stop"
        }
        values["learning_rate"] = g_rate
        _check_finite(values, int(state.step.numpy()) + 1, manager)
        state.step.assign_add(1)
        state.batch_in_epoch.assign_add(1)
        stop.observe(float(outputs["stop"]))
        step, window_steps = int(state.step.numpy()), window_steps + 1
        progress.update(int(state.batch_in_epoch.numpy()), values)
        rate = window_steps * config.batch_size / (time.perf_counter() - window_start)
        unlogged = (step, {**values, "images_per_sec": rate}, outputs)
        if step % config.log_freq == 0:
            _log_step(summaries, total, *unlogged)
            unlogged, window_start, window_steps = None, time.perf_counter(), 0
        if step % config.checkpoint_freq == 0:
            _save(manager, state)
        if stop.agreed:
            break
    progress.close(values)
    return values, unlogged


def _log_step(summaries, total, step, values, outputs):
    """One step's scalars and D(x), D(G(z)) histograms to TensorBoard, and its log line."""
    summaries.scalars(step, values)
    summaries.histograms(
        step,
        {
            "histograms/d_real": outputs["d_real_probs"],
            "histograms/d_fake": outputs["d_fake_probs"],
        },
    )
    logging.info(
        "step %d/%d  %s",
        step,
        total,
        "  ".join(f"{k} {values[k]:.4g}" for k in LOGGED if k in values),
    )


def _check_finite(values, step, manager):
    bad = {name: value for name, value in values.items() if not math.isfinite(value)}
    if bad:
        raise TrainerError(
            f"non-finite loss at step {step} ({bad}); nothing saved from this step. "
            f"Last good checkpoint: {manager.latest_checkpoint}. Lower --learning-rate "
            "and resume with --continue-train True"
        )


def fixed_inputs(config: TrainConfig):
    """The generator's inputs for TensorBoard's grid, the same at every epoch end:
    GRID_SIZE noise vectors (8 per row); for a conditional run 10 noise vectors drawn
    as every digit, one row per digit (row d: digit d; column j: noise j).

    Returns:
      (z float32 (n, latent_dim), labels int32 (n,) or None, columns of the grid).
    """
    rng = np.random.default_rng(config.seed)
    if not config.conditional:
        z = latent.draw(rng, GRID_SIZE, config.latent_dim, config.latent_distribution)
        return z, None, 8
    classes = config.num_classes
    z = latent.draw(rng, classes, config.latent_dim, config.latent_distribution)
    return (
        np.tile(z, (classes, 1)),
        np.repeat(np.arange(classes, dtype=np.int32), classes),
        classes,
    )


def _epoch_end_summaries(summaries, state, config, fixed, probe):
    """The weight average's batch-norm statistics measured for its current weights, then
    the fixed-noise grid, to TensorBoard and as LOG_DIR/grids/step_N.png for the
    training animation, and, when a probe is set, the quality figures."""
    step = int(state.step.numpy())
    model.set_standing_statistics(
        state.ema_generator,
        latent.standing_batch(config.latent_dim, config.latent_distribution),
    )
    z, labels, columns = fixed
    pixels = image_utils.to_uint8(state.ema_generator(model.inputs(z, labels), training=False))
    picture = summaries.grid(step, "generated_images", pixels, columns)
    animation.save_grid(picture, summaries.log_dir, step)
    if probe is not None:
        quality = probe(state.ema_generator)
        summaries.scalars(step, {f"eval/{name}": value for name, value in quality.items()})
        asked = quality.get("labelled_as_asked")
        logging.info(
            "step %d quality: Frechet distance %.3f, classifier score %.3f%s",
            step,
            quality["frechet_distance"],
            quality["classifier_score"],
            "" if asked is None else f", labelled as asked {asked:.3f} (worst digit)",
        )
    summaries.flush()


def _saved(manager, step: int) -> bool:
    """Whether the newest checkpoint is of `step` (so stopping there writes nothing)."""
    return (manager.latest_checkpoint or "").endswith(f"ckpt-{step}")


def _save(manager, state) -> int:
    step = int(state.step.numpy())
    path = checkpoints.save(manager, step)
    logging.info("saved checkpoint %s", path)
    return step


class _StopOnSignal:
    """Turns the first SIGINT or SIGTERM into a request to save and stop; a second
    SIGINT interrupts at once.

    `requested` is this process's signal. `agreed` is the stop every worker acts on:
    the request itself in a one-process run; with several workers, set by `observe`
    from the step's `stop`, the largest request of any worker in that step, so all of
    them save the same step and none is left waiting on the others.
    """

    def __init__(self, shared: bool = False):
        self.requested = None
        self._shared = shared
        self._agreed = None
        self._previous = {}

    @property
    def agreed(self):
        return self._agreed if self._shared else self.requested

    def observe(self, stop: float) -> None:
        if stop > 0 and not self._agreed:
            self._agreed = self.requested or "a signal to another worker"

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        logging.warning(
            "%s received: saving a checkpoint at the current step, then "
            "stopping (Ctrl-C again to abort)",
            self.requested,
        )

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False
