"""The train step: one update of both networks on a global batch, compiled.

Built by make_train_step from the state and the config; the loop (trainer.train) calls
it once a step. Its loss terms come from trainer.losses.
"""

import tensorflow as tf

from trainer import distribute, latent, losses, model, train_state
from trainer.train_config import TrainConfig


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
    `labels` are int classes; the networks read them one-hot. Batch norm's moving
    statistics update in call order: G(z), D(real), D(fake), then the extra terms'."""
    generator, discriminator = state.generator, state.discriminator
    classes = config.num_classes
    one_hot = None if labels is None else tf.one_hot(labels, classes)
    fake = generator(model.inputs(noise["z"], one_hot), training=True)
    real_logits = discriminator(model.inputs(images, one_hot), training=True)
    fake_logits = discriminator(model.inputs(fake, one_hot), training=True)
    extra = {}
    if "paired_z" in noise:  # the same classes from a second noise batch
        extra["paired"] = generator(model.inputs(noise["paired_z"], one_hot), training=True)
        extra["bound"] = bounds  # one for every pair, or each pair's class's:
        if bounds is not None and labels is not None:
            extra["bound"] = tf.gather(bounds, labels)
    if "shifts" in noise:  # real images with wrong classes are fake too
        wrong = tf.one_hot((labels + noise["shifts"]) % classes, classes)
        extra["mismatched_logits"] = discriminator(model.inputs(images, wrong), training=True)
    return losses.Forward(
        images=images,
        labels=one_hot,
        fake=fake,
        real_logits=real_logits,
        fake_logits=fake_logits,
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
