"""--sample N: PNG digits from the latest checkpoint; no data and no training needed."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from trainer import checkpoints, latent, model
from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.paths import ensure_writable_dir

GRID_COLUMNS = 10
WRITE_FIX = "free space or pass another --sample-dir"  # said when a PNG cannot be written


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


def write_samples(
    checkpoint_dir: str, sample_dir: str, count: int, seed: int, digit: int = None
) -> list:
    """Writes `count` PNGs and grid.png into sample_dir from the latest checkpoint.

    An unconditional model writes sample_00000.png, ... and a grid of the first 100.
    A conditional one writes sample_00000_digit0.png, ...: digit `digit` only, or with
    digit None every digit in equal shares (balanced_labels), and a grid with one row
    per digit.

    Returns:
      The paths of the `count` single-digit PNGs, in order.

    Raises:
      ValueError: count below 1 or digit outside 0-9.
      TrainerError: no readable checkpoint, a digit asked of an unconditional model, or
        a file that cannot be written.
    """
    if count <= 0:
        raise ValueError(f"--sample must be a positive number of images, got {count}")
    check_digit(digit)
    generator, config = checkpoints.load_sampler(checkpoint_dir)
    labels = labels_for(generator, count, digit, checkpoint_dir)
    return write_images(
        generator,
        config.latent_dim,
        sample_dir,
        count,
        seed,
        config.latent_distribution,
        labels,
    )


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


def write_images(
    generator,
    latent_dim: int,
    sample_dir: str,
    count: int,
    seed: int,
    distribution: str = "normal",
    labels=None,
) -> list:
    """write_samples for a generator already loaded, `labels` from labels_for; returns
    the PNG paths."""
    ensure_writable_dir(sample_dir, "--sample-dir")
    width = max(5, len(str(count - 1)))
    cells, columns = grid_cells(labels, count)
    wanted, paths, shown = set(cells), [], {}
    for batch in _ahead(generate(generator, count, latent_dim, seed, distribution, labels)):
        for pixels in batch:
            index = len(paths)
            suffix = "" if labels is None else f"_digit{labels[index]}"
            path = os.path.join(sample_dir, f"sample_{index:0{width}d}{suffix}.png")
            image_utils.save_png(pixels, path, WRITE_FIX)
            paths.append(path)
            if index in wanted:
                shown[index] = pixels
        if len(paths) % 5000 == 0 or len(paths) == count:
            logging.info("wrote %d/%d samples", len(paths), count)
    blank = np.full((28, 28), 255, np.uint8)
    picture = image_utils.grid(np.stack([shown.get(i, blank) for i in cells]), columns)
    image_utils.save_png(picture, os.path.join(sample_dir, "grid.png"), WRITE_FIX)
    return paths


def grid_cells(labels, count: int):
    """What grid.png shows: the image index of each cell, row by row (-1 for a blank
    cell), and the number of columns.

    The first GRID_COLUMNS ** 2 images, GRID_COLUMNS a row; for balanced labels of
    several digits, one row per digit holding its first images (up to GRID_COLUMNS).
    """
    if labels is None or len(np.unique(labels)) == 1:
        return list(range(min(count, GRID_COLUMNS**2))), GRID_COLUMNS
    rows = [np.flatnonzero(labels == digit)[:GRID_COLUMNS] for digit in np.unique(labels)]
    columns = max(len(row) for row in rows)
    return [int(row[i]) if i < len(row) else -1 for row in rows for i in range(columns)], columns


def _ahead(batches):
    """Yields the items of the iterator `batches`, drawing the next one on a worker
    thread while the caller writes this one: TensorFlow computes without holding
    Python's lock, so generation and PNG encoding overlap."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = worker.submit(next, batches, None)
        while (batch := pending.result()) is not None:
            pending = worker.submit(next, batches, None)
            yield batch
