"""--sample N: PNG digits from the latest checkpoint; no data and no training needed."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from trainer import images as image_utils
from trainer import loaders
from trainer.generation import generate, labels_for
from trainer.paths import ensure_writable_dir

GRID_COLUMNS = 10
WRITE_FIX = "free space or pass another --sample-dir"  # said when a PNG cannot be written


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

    Args:
      count: images to write, at least 1 (the command line checks --sample).

    Raises:
      TrainerError: no readable checkpoint, a digit the model cannot draw, or a file
        that cannot be written.
    """
    generator, config = loaders.load_sampler(checkpoint_dir)
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
    blank = image_utils.blank(next(iter(shown.values())).shape)
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
