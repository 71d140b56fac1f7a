"""--sample N: PNG digits from the latest checkpoint; no data and no training needed."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from trainer import checkpoints, latent, model
from trainer import images as image_utils
from trainer.paths import ensure_writable_dir

GRID_COLUMNS = 10
WRITE_FIX = "free space or pass another --sample-dir"  # said when a PNG cannot be written


def generate(generator, count: int, latent_dim: int, seed: int,
             distribution: str = "normal", labels=None):
    """Yields uint8 (b, 28, 28) batches, `count` images in all, reproducible by `seed`;
    z is drawn from `distribution` (see trainer.latent). A conditional generator draws
    digit labels[i] for image i (int (count,)); None gives it balanced_labels(count)."""
    if labels is None and model.num_classes(generator):
        labels = balanced_labels(count)
    rng = np.random.default_rng(seed)
    for start in range(0, count, image_utils.INFERENCE_BATCH):
        size = min(image_utils.INFERENCE_BATCH, count - start)
        z = latent.draw(rng, size, latent_dim, distribution)
        asked = None if labels is None else labels[start:start + size]
        yield image_utils.to_uint8(generator(model.inputs(z, asked), training=False))


def balanced_labels(count: int, num_classes: int = model.NUM_CLASSES) -> np.ndarray:
    """int32 (count,): every digit as often as `count` allows (the first count mod 10
    digits once more), in blocks of one digit, 0 first."""
    shares = [count // num_classes + (digit < count % num_classes)
              for digit in range(num_classes)]
    return np.repeat(np.arange(num_classes, dtype=np.int32), shares)


def write_samples(checkpoint_dir: str, sample_dir: str, count: int, seed: int) -> list:
    """Writes sample_00000.png ... and grid.png (the first 100 tiled) into sample_dir.

    Returns:
      The paths of the `count` single-digit PNGs, in order.
    """
    if count <= 0:
        raise ValueError(f"--sample must be a positive number of images, got {count}")
    generator, config = checkpoints.load_sampler(checkpoint_dir)
    return write_images(generator, config.latent_dim, sample_dir, count, seed,
                        config.latent_distribution)


def write_images(generator, latent_dim: int, sample_dir: str, count: int, seed: int,
                 distribution: str = "normal") -> list:
    """write_samples for a generator already loaded; returns the PNG paths."""
    ensure_writable_dir(sample_dir, "--sample-dir")
    digits = max(5, len(str(count - 1)))
    paths, first = [], []
    for batch in _ahead(generate(generator, count, latent_dim, seed, distribution)):
        if len(first) < GRID_COLUMNS ** 2:
            first.extend(batch[:GRID_COLUMNS ** 2 - len(first)])
        for pixels in batch:
            path = os.path.join(sample_dir, f"sample_{len(paths):0{digits}d}.png")
            image_utils.save_png(pixels, path, WRITE_FIX)
            paths.append(path)
        if len(paths) % 5000 == 0 or len(paths) == count:
            logging.info("wrote %d/%d samples", len(paths), count)
    image_utils.save_png(image_utils.grid(np.stack(first), GRID_COLUMNS),
                         os.path.join(sample_dir, "grid.png"), WRITE_FIX)
    return paths


def _ahead(batches):
    """Yields the items of the iterator `batches`, drawing the next one on a worker
    thread while the caller writes this one: TensorFlow computes without holding
    Python's lock, so generation and PNG encoding overlap."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = worker.submit(next, batches, None)
        while (batch := pending.result()) is not None:
            pending = worker.submit(next, batches, None)
            yield batch

