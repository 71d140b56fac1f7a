"""--evaluate for a model of an image folder, which has no classifier of its own.

The field's standard measure is the Frechet Inception distance (Heusel et al. 2017):
Keras's InceptionV3 with its ImageNet weights, which Keras downloads once into
~/.keras/models. Its floor is the same distance between two halves of the folder's
own images. Where the weights cannot be had (offline), one line says so and the
measure that needs no download is given: the memorization check, each sample's pixel
distance to its nearest training image beside that of held-out real images.
"""

import logging

import numpy as np

from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.evaluation import metrics, quality
from trainer.evaluation.memorization import memorization
from trainer.train_config import load_saved_config

INCEPTION_SIZE = 299  # InceptionV3's input side
INCEPTION_BATCH = 50


def run(checkpoint_dir: str, data_dir: str, count: int, seed: int, inception=None) -> dict:
    """Judges a folder model's samples against the folder's images.

    Args:
      checkpoint_dir: the model's folder.
      data_dir: the folder of images it was trained on.
      count: samples to draw (and at most that many real images on each side).
      seed: the draw's seed.
      inception: a function uint8 images -> float features; None loads Keras's
        InceptionV3 (downloading its weights once), or skips the distance offline.

    Returns:
      {"frechet_inception_distance", "real_floor", "fd_over_floor"} (None where the
      weights could not be had, with "inception_unavailable" saying why), and
      "memorization": the pixel distances of samples and held-out images to their
      nearest training images.

    Raises:
      TrainerError: no --data-dir, or its images are not the model's size.
    """
    from trainer import folders  # here: it reads Pillow's plugins, which MNIST needs not

    spec = load_saved_config(checkpoint_dir).image
    if not data_dir:
        raise TrainerError(
            "--evaluate compares a folder model's samples with the folder's images: pass "
            "--data-dir with the folder it was trained on"
        )
    folder = folders.load(data_dir, spec.height, spec.channels)
    real = folder.images
    # A conditional model's samples: in the folder's class shares.
    generated, _, _ = quality.samples(checkpoint_dir, count, seed, folder.labels)
    first, second = halves(real, count, seed)
    results = {"count": count, "real_images": len(real)}
    results.update(inception_figures(generated, first, second, inception))
    results["memorization"] = memorization(
        image_utils.unit_pixels(generated),
        image_utils.unit_pixels(second),  # real images the check's training half lacks
        image_utils.unit_pixels(first),
    )
    return results


def halves(real, count: int, seed: int):
    """Two disjoint seeded draws of the real images, each of min(half of them, count):
    the reference the samples are measured against, and the floor's real images."""
    order = np.random.default_rng(seed).permutation(len(real))
    half = min(len(real) // 2, count)
    return (
        np.asarray(real[np.sort(order[:half])]),
        np.asarray(real[np.sort(order[half : 2 * half])]),
    )


def inception_figures(generated, first, second, inception=None) -> dict:
    """The Frechet Inception distance of `generated` to the real images `first`, and its
    floor, `second`'s distance to them; None for each, with why, offline."""
    try:
        inception = inception or inception_features()
    except Exception as err:  # noqa: BLE001 - Keras's download raises bare Exception offline
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        logging.warning(
            "no Frechet Inception distance: Keras's InceptionV3 ImageNet weights could not "
            "be had (%s); the measures below need no download",
            reason,
        )
        return {
            "frechet_inception_distance": None,
            "real_floor": None,
            "fd_over_floor": None,
            "inception_unavailable": reason,
        }
    stats = {
        name: metrics.gaussian_stats(inception(images))
        for name, images in (("generated", generated), ("first", first), ("second", second))
    }
    distance = metrics.frechet_distance_from_stats(*stats["generated"], *stats["first"])
    floor = metrics.frechet_distance_from_stats(*stats["second"], *stats["first"])
    return {
        "frechet_inception_distance": distance,
        "real_floor": floor,
        "fd_over_floor": distance / max(floor, 1e-12),
    }


def inception_features():
    """A function uint8 (N, H, W[, C]) images -> float32 (N, 2048) InceptionV3 pool
    features; loading it downloads the ImageNet weights on first use."""
    import tensorflow as tf

    model = tf.keras.applications.InceptionV3(include_top=False, weights="imagenet", pooling="avg")

    def features(images):
        images = np.asarray(images)
        if images.ndim == 3:  # grey: the same value in all three channels
            images = np.repeat(images[..., None], 3, axis=3)
        out = []
        for start in range(0, len(images), INCEPTION_BATCH):
            batch = tf.image.resize(
                tf.cast(images[start : start + INCEPTION_BATCH], tf.float32),
                (INCEPTION_SIZE, INCEPTION_SIZE),
            )
            batch = tf.keras.applications.inception_v3.preprocess_input(batch)
            out.append(model(batch, training=False).numpy())
        return np.concatenate(out)

    return features


def format_table(results: dict) -> str:
    """The figures as a few lines of text."""
    lines = [
        f"{'samples judged':<40}{results['count']:>12}",
        f"{'real images in the folder':<40}{results['real_images']:>12}",
        *inception_lines(results),
    ]
    copies = results["memorization"]
    for name, label in (("generated", "samples"), ("held_out", "held-out real images")):
        lines.append(f"{'nearest training image, ' + label:<40}{copies[name]['mean']:>12.3f}")
    return "\n".join(lines)


def inception_lines(results: dict) -> list:
    """inception_figures' figures as lines of text."""
    lines = []
    if results["frechet_inception_distance"] is None:
        lines.append(
            f"Frechet Inception distance: not measured ({results['inception_unavailable']})"
        )
    else:
        lines += [
            f"{'Frechet Inception distance':<40}{results['frechet_inception_distance']:>12.2f}",
            f"{'its floor (half the folder vs the other)':<40}{results['real_floor']:>12.2f}",
            f"{'distance / floor':<40}{results['fd_over_floor']:>12.2f}",
        ]
    return lines
