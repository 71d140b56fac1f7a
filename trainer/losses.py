"""The loss terms of both networks: pure functions, combined by weights from the config.

Each term maps the step's tensors to a float32 (B,) loss per image (or per pair of
images); the train step averages each over the global batch, logs it under its name and
adds it to its network's loss times its weight (`weights`). `generator_terms` and
`discriminator_terms` pick the terms a config turns on, so a new loss touches this
module, the config and a test, not the train step.
"""

import dataclasses

import tensorflow as tf

from trainer import model


@dataclasses.dataclass(frozen=True)
class Forward:
    """One forward pass of the step, what the terms read.

    images: the real batch (B, H, W, C) in [-1, 1]; labels: their classes as
    model.inputs takes them, or None; fake: G(z), like images; real_logits and
    fake_logits: D's float32 (B, 1); discriminator: D itself, for the R1 term. Where
    their terms are on: paired (G(paired_z), like fake), z and paired_z (B, latent_dim),
    bound (the mode-seeking cap, (B,) or (1,) or None) and mismatched_logits (D's (B, 1)
    on the real images with a wrong class each).
    """

    images: tf.Tensor
    labels: tf.Tensor
    fake: tf.Tensor
    real_logits: tf.Tensor
    fake_logits: tf.Tensor
    discriminator: tf.keras.Model
    z: tf.Tensor = None
    paired: tf.Tensor = None
    paired_z: tf.Tensor = None
    bound: tf.Tensor = None
    mismatched_logits: tf.Tensor = None


def weights(config) -> dict:
    """Each term's weight in its network's loss. R1 is taken every r1_interval steps,
    so it weighs that many times gamma / 2 (lazy regularization, Karras et al. 2020)."""
    return {
        "g_loss": 1.0,
        "d_loss": 1.0,
        "mode_seeking": config.mode_seeking,
        "mismatch": config.mismatch,
        "r1": 0.5 * config.r1_gamma * config.r1_interval,
    }


def generator_terms(forward: Forward, config) -> dict:
    """The generator's terms this config turns on: name -> float32 (B,)."""
    terms = {"g_loss": generator_loss(forward.fake_logits)}
    if config.mode_seeking > 0:
        terms["mode_seeking"] = mode_seeking_loss(
            forward.fake, forward.paired, forward.z, forward.paired_z, forward.bound
        )
    return terms


def discriminator_terms(forward: Forward, config, regularize: bool) -> dict:
    """The discriminator's terms this config turns on (R1 only on a `regularize` step):
    name -> float32 (B,)."""
    terms = {
        "d_loss": discriminator_loss(
            forward.real_logits, forward.fake_logits, config.label_smoothing
        )
    }
    if config.mismatch > 0:
        terms["mismatch"] = mismatch_loss(forward.mismatched_logits)
    if regularize and config.r1_gamma > 0:
        terms["r1"] = r1_penalty(forward.discriminator, forward.images, forward.labels)
    return terms


def total(terms: dict, term_weights: dict, average) -> tuple:
    """(the weighted sum of the averaged terms, each term's average by name); `average`
    maps a per-image loss to its share of the global batch's mean."""
    averages = {name: average(value) for name, value in terms.items()}
    loss = sum(term_weights[name] * value for name, value in averages.items())
    return loss, averages


def discriminator_loss(
    real_logits: tf.Tensor, fake_logits: tf.Tensor, label_smoothing: float = 0.0
) -> tf.Tensor:
    """Cross-entropy of D on real (label 1 - label_smoothing) plus on generated (label 0)
    images; smoothing only the real side is Salimans et al. 2016's one-sided smoothing.

    softplus(-l) = -log(sigmoid(l)) and softplus(l) = -log(1 - sigmoid(l)), computed
    stably on logits. Zero logits give ln 2 + ln 2.

    Args:
      real_logits, fake_logits: float32 (B, 1), D's logits on B real and B generated
        images.

    Returns:
      float32 (B,): the loss of each (real, generated) pair.
    """
    target = 1.0 - label_smoothing
    real_loss = target * tf.nn.softplus(-real_logits) + (1 - target) * tf.nn.softplus(real_logits)
    return real_loss[:, 0] + tf.nn.softplus(fake_logits)[:, 0]


def generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating loss -log D(G(z)) (Goodfellow et al. 2014): strong gradients
    early, when D rejects every sample. Zero logits give ln 2.

    Returns:
      float32 (B,) from logits (B, 1): each generated image's loss.
    """
    return tf.nn.softplus(-fake_logits)[:, 0]


def mismatch_loss(mismatched_logits: tf.Tensor) -> tf.Tensor:
    """-log(1 - D(x, wrong class)): real images paired with a wrong class are fake (the
    matching-aware discriminator of Reed et al. 2016), so D judges whether image and
    class agree. Zero logits give ln 2.

    Returns:
      float32 (B,) from logits (B, 1).
    """
    return tf.nn.softplus(mismatched_logits)[:, 0]


def mode_seeking_loss(
    images: tf.Tensor,
    paired_images: tf.Tensor,
    z: tf.Tensor,
    paired_z: tf.Tensor,
    bound: tf.Tensor = None,
) -> tf.Tensor:
    """Mode-seeking term (Mao et al. 2019, MSGAN): the generator lowers it by drawing
    different images from different noise for the same class, against the collapse of
    a conditional generator onto one image per class. Per pair, 1 / (d_image / d_z +
    1e-5), d the mean absolute difference; two identical images give 1e5.

    With `bound`, d_image counts only up to it (the diversity-sensitive GAN's cap, Yang
    et al. 2019): a pair already as different as the bound is not pushed further apart.

    Args:
      images, paired_images: float32 (B, H, W, C), the generator's images of z and of
        paired_z for the same classes.
      z, paired_z: float32 (B, latent_dim), the noise they were drawn from.
      bound: float32 (B,), each pair's cap on d_image; (1,), one for every pair; or
        None for none.

    Returns:
      float32 (B,): each pair's term.
    """
    d_images = tf.reduce_mean(tf.abs(images - paired_images), axis=[1, 2, 3])
    if bound is not None:
        d_images = tf.minimum(d_images, bound)
    d_z = tf.reduce_mean(tf.abs(z - paired_z), axis=1)
    return 1.0 / (d_images / d_z + 1e-5)


def r1_penalty(
    discriminator: tf.keras.Model, real_images: tf.Tensor, labels: tf.Tensor = None
) -> tf.Tensor:
    """Squared gradient norm of D's logit at each real image (Mescheder et al. 2018);
    `labels`, the images' classes as model.inputs takes them, for a conditional one.

    Returns:
      float32 (B,), ||grad_x D(x)||^2 per image; the loss adds gamma / 2 times the mean.
    """
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        logits = discriminator(model.inputs(real_images, labels), training=True)
    grads = tape.gradient(logits, real_images)  # logits are per-image: d logit_i / d x_i
    return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])
