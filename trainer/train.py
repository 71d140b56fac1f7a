"""The training loop (its step is trainer.train_step): the only place that sequences I/O."""

import dataclasses
import logging
import math
import time

import numpy as np
import tensorflow as tf

from trainer import (
    animation,
    budget,
    checkpoints,
    data,
    distribute,
    latent,
    model,
    train_state,
    train_step,
)
from trainer import images as image_utils
from trainer import stop as stop_signal
from trainer.errors import TrainerError
from trainer.evaluation import quality
from trainer.paths import ensure_writable_dir
from trainer.progress import EpochProgress
from trainer.summaries import Summaries
from trainer.train_config import DEFAULT_IMAGE_SIZE, TrainConfig, budget_recipe, recipe_key

GRID_SIZE = 64  # fixed-noise images in each TensorBoard grid (8x8)
UNPLANNED = 2**62  # a --time-budget run's step budget until its first plan
LOGGED = (
    "d_loss",
    "g_loss",
    "mode_seeking",
    "d_real",
    "d_fake",
    "d_mismatch",
    "images_per_sec",
)  # in the log lines (mode_seeking, d_mismatch where on)


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
    the generator's. A --time-budget run decays over its share of the planned steps
    (none before the plan)."""
    if config.time_budget:
        decay = 0 if total == UNPLANNED else round(config.lr_decay_share * total)
    else:
        decay = config.lr_decay_epochs * per_epoch
    scale = learning_rate_scale(int(state.step.numpy()), total, decay)
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
    if config.time_budget and distribute.is_multi_worker(strategy):
        raise TrainerError(
            "--time-budget plans one machine's steps from its own pace; drop it to train "
            "on several workers (--train-steps or --num-epochs)"
        )
    if images is None:  # first: bad data is refused before anything is written
        images, labels, spec = data.load_training(config)
        if config.conditional and spec.num_classes < 2:
            raise TrainerError(
                f"--conditional trains on classes, and {config.data_dir!r} has none: put "
                "its images in one subfolder per class, or drop --conditional"
            )
        config = dataclasses.replace(config, image=spec)
    if config.conditional and labels is None:
        raise ValueError("a conditional run needs the labels of its images")
    _check_images(images, config.image)
    if config.time_budget and not config.continue_train:
        _check_start_up(config.time_budget)
    with distribute.WorkerFolders(chief) as folders:
        # A worker other than the chief writes its copies where they are thrown away.
        own = dataclasses.replace(
            config,
            checkpoint_dir=folders.path(config.checkpoint_dir, "checkpoints"),
            log_dir=folders.path(config.log_dir, "summary"),
        )
        ensure_writable_dir(own.log_dir, "--log-dir")  # before the networks are built
        per_epoch = data.steps_per_epoch(
            len(images) * (2 if config.mirror else 1), config.batch_size
        )
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


def _check_start_up(duration: str) -> None:
    """Raises TrainerError, before anything is written, when start-up alone has spent
    the budget."""
    age = budget.process_age()
    if age >= budget.parse_duration(duration):
        raise TrainerError(
            f"--time-budget {duration} is shorter than this run's start-up: loading "
            f"TensorFlow, the data and the networks took {age:.1f} s; give at least a minute"
        )


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
    bounds = data.pair_distances(images, labels, seed=config.seed, num_classes=config.num_classes)
    logging.info(
        "mode-seeking term capped where two images differ as much as two real "
        "ones of their digit do: %s",
        " ".join(f"{digit}:{value:.3f}" for digit, value in enumerate(bounds)),
    )
    return bounds


@dataclasses.dataclass
class _Run:
    """What the loop and its helpers share: the run's config, state and checkpoints,
    its compiled step, its data, its step budget and where its figures go."""

    config: TrainConfig
    state: train_state.TrainState
    manager: tf.train.CheckpointManager
    strategy: tf.distribute.Strategy
    step: object  # train_step.make_train_step's tf.function
    images: np.ndarray  # uint8 (N, H, W[, C])
    labels: np.ndarray  # uint8 (N,), or None for an unconditional run
    per_epoch: int  # steps in an epoch
    summaries: Summaries
    stop: stop_signal.StopOnSignal = None
    clock: budget.Planner = None  # the time spent; with --time-budget, the plan
    pace: budget.Pace = None  # with --time-budget, the measured seconds a step
    traced: set = dataclasses.field(default_factory=set)  # step variants this process traced

    @property
    def total(self) -> int:
        if self.config.time_budget:
            return UNPLANNED if self.clock.total is None else self.clock.total
        return self.config.train_steps or self.config.num_epochs * self.per_epoch

    @property
    def num_epochs(self) -> int:
        """Epochs to the budget's end; None until a --time-budget run has planned."""
        return None if self.total == UNPLANNED else math.ceil(self.total / self.per_epoch)

    def at(self) -> int:
        return int(self.state.step.numpy())


def _train(config, state, manager, dataset, per_epoch, strategy, chief) -> dict:
    """The loop: steps toward the budget with summaries, samples and checkpoints on
    cadence (the chief's; other workers train and save alongside, nothing more).
    `dataset` is (images, labels), labels None for an unconditional run."""
    compiled = train_step.make_train_step(
        state, config, strategy, pair_bounds_for(config, *dataset)
    )
    run = _Run(
        config, state, manager, strategy, compiled, *dataset, per_epoch, Summaries(config.log_dir)
    )
    run.clock = _clock_for(config, state, per_epoch)
    probe = quality.probe_for(config) if chief else None
    fixed = fixed_inputs(config)  # same across resumes
    if run.at() == 0:
        run.summaries.grid(0, "real_images", run.images[:GRID_SIZE])
        run.summaries.text(0, "config", config.to_json())
    if config.time_budget:
        if run.at() == 0:
            logging.info(_recipe_line(config))
        logging.info(
            "training for %s (%s left), checkpoints in %s: the steps are planned once "
            "the step is compiled",
            budget.format_duration(run.clock.budget),
            budget.format_duration(run.clock.left()),
            config.checkpoint_dir,
        )
    else:
        logging.info(
            "training to step %d (%d epochs of %d steps), checkpoints in %s",
            run.total,
            run.num_epochs,
            per_epoch,
            config.checkpoint_dir,
        )

    def epoch_end(probe):  # the chief's grids and figures: other workers' are thrown away
        started = time.perf_counter()
        if chief:
            _epoch_end_summaries(run.summaries, state, config, fixed, probe)
        run.clock.epoch_end_seconds = time.perf_counter() - started

    metrics, unlogged = {}, None
    with stop_signal.StopOnSignal(shared=distribute.is_multi_worker(strategy)) as run.stop:
        if config.time_budget:  # what an epoch end and a checkpoint cost, for the plan
            window = min(120.0, max(10.0, budget.PACE_WINDOW * run.clock.budget))
            run.pace = budget.Pace(window, least=config.r1_interval)
            epoch_end(probe)
            _save(run)
        while run.at() < run.total and not run.stop.agreed:
            metrics, unlogged = _train_epoch(run)
            if int(state.batch_in_epoch.numpy()) == per_epoch:
                state.epoch.assign_add(1)
                state.batch_in_epoch.assign(0)
                epoch_end(probe)
                _save(run)
        if unlogged:  # the run's last step, off the --log-freq cadence: its curve point
            _log_step(run, *unlogged)
        if not _saved(manager, run.at()):
            _save(run)  # first, so a stop request is honoured at once
        if int(state.batch_in_epoch.numpy()) != 0:  # a mid-epoch end: the budget or a signal
            # A stop skips the quality probe: seconds a user waiting on Ctrl-C or a
            # scheduler's grace period should not spend.
            epoch_end(None if run.stop.agreed else probe)
    run.summaries.close()
    _finish(run, chief)
    return {
        "step": run.at(),
        "epoch": int(state.epoch.numpy()),
        "interrupted": run.stop.agreed,
        "checkpoint": manager.latest_checkpoint,
        **metrics,
    }


def _recipe_line(config: TrainConfig) -> str:
    """What a fresh --time-budget run took from its budget's recipe, and which flags
    given instead won."""
    recipe = budget_recipe(
        config.dataset, config.time_budget, config.conditional, config.image_size
    )
    key = recipe_key(config.dataset, config.image_size)
    if recipe is None:
        kind = "conditional runs" if config.conditional else f"--dataset {config.dataset}"
        if config.dataset == "folder" and not config.conditional:
            kind += f" at --image-size {config.image_size or DEFAULT_IMAGE_SIZE}"
        return f"no --time-budget recipe is measured for {kind}: the defaults train"
    tuned, fields = recipe
    taken = [f"{k} {v}" for k, v in fields.items() if getattr(config, k) == v]
    flags = [f"{k} {getattr(config, k)}" for k, v in fields.items() if getattr(config, k) != v]
    line = (
        f"the {budget.format_duration(tuned)} recipe for {key} "
        f"(docs/results.md): {', '.join(taken) or 'nothing'}"
    )
    return line + (f"; your flags instead: {', '.join(flags)}" if flags else "")


def _clock_for(config, state, per_epoch) -> budget.Planner:
    """The run's time spent, from the checkpoint's record and this process's age; with
    --time-budget, its planner.

    Raises:
      TrainerError: a resumed run that has already spent its budget.
    """
    seconds = budget.parse_duration(config.time_budget) if config.time_budget else None
    spent = float(state.elapsed.numpy())
    if seconds is not None and spent >= seconds:
        raise TrainerError(
            f"this run has spent {budget.format_duration(spent)} of its --time-budget "
            f"{config.time_budget}; to train on, resume with a larger --time-budget"
        )
    return budget.Planner(
        seconds,
        spent + budget.process_age(),
        per_epoch=per_epoch,
        checkpoint_freq=config.checkpoint_freq,
    )


def _plan(run, seconds: float, regularize: bool) -> None:
    """A --time-budget run's bookkeeping after a step that took `seconds`: the first
    plan once the pace is measured, then a re-plan whenever the planned end drifts
    from the deadline. A process's first step with R1 and first without trace the step
    function, and are not measured."""
    if regularize not in run.traced:
        run.traced.add(regularize)
        return
    run.pace.add(seconds)
    clock, at = run.clock, run.at()
    if clock.total is None:
        if len(run.pace) < run.config.r1_interval:
            return
        clock.plan(at, run.pace.seconds())
        logging.info(
            "time budget %s: %s spent; planned to step %d (%d more) at %.3f s a step, "
            "finishing by %s (the end takes about %.0f s)",
            budget.format_duration(clock.budget),
            budget.format_duration(clock.spent()),
            clock.total,
            clock.total - at,
            clock.step_seconds,
            _clock_time(clock.left()),
            clock.end_seconds(),
        )
        if clock.total == at:
            logging.warning(
                "the budget has no time left to train: start-up and compilation spent it; "
                "saving step %d and ending (give a larger --time-budget)",
                at,
            )
    elif at < clock.total and clock.drifted(at, run.pace.seconds()):
        planned, was = clock.total, clock.step_seconds
        clock.plan(at, run.pace.seconds())
        logging.info(
            "re-planned: %.3f s a step now (was %.3f): to step %d (was %d), finishing by %s",
            clock.step_seconds,
            was,
            clock.total,
            planned,
            _clock_time(clock.left()),
        )


def _clock_time(seconds_from_now: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(time.time() + seconds_from_now))


def _finish(run, chief) -> None:
    """What follows the last step: the stop's log line, the training animation, the
    finished model published, and every worker waiting for the others."""
    config = run.config
    if run.stop.agreed:
        logging.warning(
            "stopped by %s at step %d; resume with --continue-train True", run.stop.agreed, run.at()
        )
    if chief and animation.grid_paths(config.log_dir):  # none if nothing was trained
        logging.info("wrote %s", animation.write_progress_gif(config.log_dir))
    if config.time_budget:
        logging.info(
            "spent %.1f s of the %s budget (%.1f s left)",
            run.clock.spent(),
            config.time_budget,
            run.clock.left(),
        )
    if chief and config.model_dir and not run.stop.agreed:  # a finished run's model
        published = checkpoints.publish_model(config.checkpoint_dir, config.model_dir)
        logging.info("published the model to %s", published)
    distribute.barrier(run.strategy)


def _train_epoch(run: _Run):
    """Trains from the saved position to the end of the epoch, the budget or an agreed
    stop, logging every --log-freq steps.

    Returns:
      (metrics of the last step, and _log_step's arguments for that step if it was not
      logged, else None): the run's last step is the last of its last epoch's call.
    """
    config, state, stop = run.config, run.state, run.stop
    start, epoch = int(state.batch_in_epoch.numpy()), int(state.epoch.numpy())
    progress = EpochProgress(epoch, run.num_epochs, run.per_epoch, start, config.batch_size)
    batches = data.epoch_batches(
        run.images,
        config.batch_size,
        config.seed,
        epoch,
        start,
        labels=run.labels,
        mirror=config.mirror,
    )
    values, unlogged, window_start, window_steps = {}, None, time.perf_counter(), 0
    for real, labels in batches:
        if run.at() >= run.total:  # the budget, which a --time-budget run may re-plan
            break
        step_started = time.perf_counter()
        regularize = run.at() % config.r1_interval == 0
        g_rate = _set_learning_rates(state, config, run.total, run.per_epoch)
        outputs = run.step(
            train_step.distribute_batch(run.strategy, real),
            regularize,
            tf.constant(1.0 if stop.requested else 0.0),
            labels=None if labels is None else train_step.distribute_batch(run.strategy, labels),
        )
        values = {
            name: float(value)
            for name, value in outputs.items()
            if value.shape.rank == 0 and name != "stop"
        }
        values["learning_rate"] = g_rate
        _check_finite(values, run.at() + 1, run.manager)
        state.step.assign_add(1)
        state.batch_in_epoch.assign_add(1)
        stop.observe(float(outputs["stop"]))
        if config.time_budget:
            _plan(run, time.perf_counter() - step_started, regularize)
        window_steps += 1
        progress.update(int(state.batch_in_epoch.numpy()), values)
        rate = window_steps * config.batch_size / (time.perf_counter() - window_start)
        unlogged = (run.at(), {**values, "images_per_sec": rate}, outputs)
        if run.at() % config.log_freq == 0:
            _log_step(run, *unlogged)
            unlogged, window_start, window_steps = None, time.perf_counter(), 0
        if run.at() % config.checkpoint_freq == 0:
            _save(run)
        if stop.agreed:
            break
    progress.close(values)
    return values, unlogged


def _log_step(run, at, values, outputs):
    """Step `at`'s scalars and D(x), D(G(z)) histograms to TensorBoard, and its log line."""
    run.summaries.scalars(at, values)
    run.summaries.histograms(
        at,
        {
            "histograms/d_real": outputs["d_real_probs"],
            "histograms/d_fake": outputs["d_fake_probs"],
        },
    )
    logging.info(
        "step %d/%d  %s",
        at,
        run.total,
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
    pixels = image_utils.to_uint8(
        state.ema_generator(model.inputs(z, labels, config.num_classes), training=False)
    )
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
            "" if asked is None else f", labelled as asked {asked:.3f} (worst class)",
        )
    summaries.flush()


def _saved(manager, step: int) -> bool:
    """Whether the newest checkpoint is of `step` (so stopping there writes nothing)."""
    return (manager.latest_checkpoint or "").endswith(f"ckpt-{step}")


def _save(run) -> int:
    """Saves a checkpoint of the current step, with the time the run has spent."""
    started = time.perf_counter()
    step = run.at()
    run.state.elapsed.assign(run.clock.spent())
    path = checkpoints.save(run.manager, step)
    run.clock.save_seconds = time.perf_counter() - started
    logging.info("saved checkpoint %s", path)
    return step
