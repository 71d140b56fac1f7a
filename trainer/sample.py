"""--sample N: PNG digits from the latest checkpoint; no data and no training needed."""

import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from trainer import checkpoints, latent
from trainer import images as image_utils
from trainer.paths import ensure_writable_dir

GRID_COLUMNS = 10
WRITE_FIX = "free space or pass another --sample-dir"  # said when a PNG cannot be written


def generate(generator, count: int, latent_dim: int, seed: int,
             distribution: str = "normal"):
    """Yields uint8 (b, 28, 28) batches, `count` images in all, reproducible by `seed`;
    z is drawn from `distribution` (see trainer.latent)."""
    rng = np.random.default_rng(seed)
    for start in range(0, count, image_utils.INFERENCE_BATCH):
        z = latent.draw(rng, min(image_utils.INFERENCE_BATCH, count - start), latent_dim,
                        distribution)
        yield image_utils.to_uint8(generator(z, training=False))


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

