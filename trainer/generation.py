"""Generation: batches of uint8 images from a loaded generator, reproducible by seed,
and the class labels a conditional generator is asked for; what --sample, evaluation
(and so training's quality checks) and interpolation draw and check classes with."""

import numpy as np

from trainer import images as image_utils
from trainer import latent, model
from trainer.errors import TrainerError


def generate(
    generator,
    count: int,
    latent_dim: int,
    seed: int,
    distribution: str = "normal",
    labels=None,
):
    """Yields uint8 batches of (b, H, W) grey or (b, H, W, 3) colour images
    (images.to_uint8), `count` images in all, reproducible by `seed`; z is drawn from
    `distribution` (see trainer.latent). A conditional generator draws class labels[i]
    for image i (int (count,)); None gives it balanced_labels."""
    classes = model.num_classes(generator)
    if labels is None and classes:
        labels = balanced_labels(count, classes)
    rng = np.random.default_rng(seed)
    for start in range(0, count, image_utils.INFERENCE_BATCH):
        size = min(image_utils.INFERENCE_BATCH, count - start)
        z = latent.draw(rng, size, latent_dim, distribution)
        asked = None if labels is None else labels[start : start + size]
        yield image_utils.to_uint8(generator(model.inputs(z, asked, classes), training=False))


def balanced_labels(count: int, num_classes: int) -> np.ndarray:
    """int32 (count,): every class as often as `count` allows (the first count mod
    num_classes classes once more), in blocks of one class, 0 first."""
    shares = [count // num_classes + (digit < count % num_classes) for digit in range(num_classes)]
    return np.repeat(np.arange(num_classes, dtype=np.int32), shares)


def labels_in_shares(count: int, data_labels, num_classes: int) -> np.ndarray:
    """int32 (count,): every class in its share of `data_labels` (a data set's int
    labels), rounded by largest remainder, in blocks of one class, 0 first."""
    counts = np.bincount(np.asarray(data_labels), minlength=num_classes)[:num_classes]
    exact = count * counts / counts.sum()
    shares = np.floor(exact).astype(int)
    shares[np.argsort(shares - exact, kind="stable")[: count - shares.sum()]] += 1
    return np.repeat(np.arange(num_classes, dtype=np.int32), shares)


def labels_for(generator, count: int, digit, checkpoint_dir: str):
    """The classes a generator is asked for: None (unconditional), `count` times
    `digit`, or balanced_labels.

    Raises:
      TrainerError: `digit` given for an unconditional generator, or not one of its
        classes.
    """
    check_digit_applies(generator, digit, checkpoint_dir)
    if not model.num_classes(generator):
        return None
    if digit is not None:
        return np.full(count, digit, dtype=np.int32)
    return balanced_labels(count, model.num_classes(generator))


def check_digit_applies(generator, digit, checkpoint_dir: str) -> None:
    """Raises TrainerError when a digit is asked of an unconditional generator, or one
    outside its classes: the one check of --digit, made where the model is known."""
    if digit is None:
        return
    classes = model.num_classes(generator)
    if not classes:
        raise TrainerError(
            f"--digit {digit}: the model in {checkpoint_dir!r} is unconditional (it "
            "cannot choose the digit); sample the shipped conditional model (leave out "
            f"--checkpoint-dir) or one trained with --conditional"
        )
    if digit not in range(classes):
        raise TrainerError(
            f"--digit must be one of 0-{classes - 1} for the model in {checkpoint_dir!r}, "
            f"got {digit}"
        )
