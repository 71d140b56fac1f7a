"""Generation: batches of uint8 digits from a loaded generator, reproducible by seed,
and the digit labels a conditional generator is asked for; what --sample, evaluation
(and so training's quality checks) and interpolation draw and check digits with."""

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
    """Yields uint8 (b, 28, 28) batches, `count` images in all, reproducible by `seed`;
    z is drawn from `distribution` (see trainer.latent). A conditional generator draws
    digit labels[i] for image i (int (count,)); None gives it balanced_labels(count)."""
    if labels is None and model.num_classes(generator):
        labels = balanced_labels(count)
    rng = np.random.default_rng(seed)
    for start in range(0, count, image_utils.INFERENCE_BATCH):
        size = min(image_utils.INFERENCE_BATCH, count - start)
        z = latent.draw(rng, size, latent_dim, distribution)
        asked = None if labels is None else labels[start : start + size]
        yield image_utils.to_uint8(generator(model.inputs(z, asked), training=False))


def balanced_labels(count: int, num_classes: int = model.NUM_CLASSES) -> np.ndarray:
    """int32 (count,): every digit as often as `count` allows (the first count mod 10
    digits once more), in blocks of one digit, 0 first."""
    shares = [count // num_classes + (digit < count % num_classes) for digit in range(num_classes)]
    return np.repeat(np.arange(num_classes, dtype=np.int32), shares)


def check_digit(digit) -> None:
    """Raises ValueError unless `digit` is None or one of 0-9."""
    if digit is not None and digit not in range(model.NUM_CLASSES):
        raise ValueError(f"--digit must be one of 0-9, got {digit}")


def labels_for(generator, count: int, digit, checkpoint_dir: str):
    """The digits a generator is asked for: None (unconditional), `count` times
    `digit`, or balanced_labels(count).

    Raises:
      TrainerError: `digit` given for an unconditional generator.
    """
    check_digit_applies(generator, digit, checkpoint_dir)
    if not model.num_classes(generator):
        return None
    if digit is not None:
        return np.full(count, digit, dtype=np.int32)
    return balanced_labels(count)


def check_digit_applies(generator, digit, checkpoint_dir: str) -> None:
    """Raises TrainerError when a digit is asked of an unconditional generator."""
    if digit is not None and not model.num_classes(generator):
        raise TrainerError(
            f"--digit {digit}: the model in {checkpoint_dir!r} is unconditional (it "
            "cannot choose the digit); sample the shipped conditional model (leave out "
            f"--checkpoint-dir) or one trained with --conditional"
        )
