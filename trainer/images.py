"""Pixels in and out of the networks: uint8 digits <-> model range, batched inference,
grids, and PNG files a person can look at (local, gs:// or ram://: Pillow encodes and
decodes in memory, tf.io.gfile moves the bytes)."""

import io

import numpy as np
import tensorflow as tf
from PIL import Image

from trainer import paths
from trainer.errors import TrainerError

INFERENCE_BATCH = 500  # images per network call outside training: memory stays bounded


def to_model_range(pixels) -> np.ndarray:
    """uint8 (N, 28, 28[, 1]) in [0, 255] -> float32 (N, 28, 28, 1) in [-1, 1], what the
    networks read (the generator's tanh range)."""
    pixels = np.asarray(pixels)
    return (pixels.astype(np.float32) / 127.5 - 1.0).reshape(len(pixels), 28, 28, 1)


def to_uint8(images) -> np.ndarray:
    """float images in [-1, 1], shape (N, 28, 28[, 1]) -> uint8 (N, 28, 28) in [0, 255]."""
    images = np.asarray(images, dtype=np.float32).reshape(len(images), 28, 28)
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def unit_pixels(pixels) -> np.ndarray:
    """uint8 (N, 28, 28) in [0, 255] -> float32 (N, 784) in [0, 1]: pixels as vectors."""
    pixels = np.asarray(pixels)
    return pixels.reshape(len(pixels), -1).astype(np.float32) / np.float32(255)


def in_batches(function, *inputs, batch: int = INFERENCE_BATCH):
    """`function` applied to `batch` rows at a time of `inputs` (one or more arrays of
    the same length, given the same rows of each), its outputs (an array, or a tuple of
    arrays) concatenated back as NumPy arrays."""
    outputs = [
        function(*(array[start : start + batch] for array in inputs))
        for start in range(0, len(inputs[0]), batch)
    ]
    if isinstance(outputs[0], (tuple, list)):
        return tuple(
            np.concatenate([np.asarray(o[i]) for o in outputs]) for i in range(len(outputs[0]))
        )
    return np.concatenate([np.asarray(o) for o in outputs])


def grid(images: np.ndarray, columns: int, padding: int = 2) -> np.ndarray:
    """Tiles uint8 (N, H, W) images into one uint8 (rows * (H + p) + p, ...) picture,
    row by row, on a white background so digits stand apart."""
    count, height, width = images.shape
    rows = -(-count // columns)
    canvas = np.full(
        (rows * (height + padding) + padding, columns * (width + padding) + padding),
        255,
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        canvas[top : top + height, left : left + width] = image
    return canvas


def save_png(
    pixels: np.ndarray, path: str, fix: str = "free space or write to another folder"
) -> None:
    """Writes a uint8 (H, W) array as a grayscale PNG.

    Raises:
      TrainerError: the file cannot be written, naming it, the reason and `fix` (what the
        user can do, e.g. "free space or pass another --sample-dir").
    """
    encoded = io.BytesIO()
    try:
        Image.fromarray(pixels, mode="L").save(encoded, format="PNG")
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(encoded.getvalue())
    except (OSError, tf.errors.OpError) as err:
        raise TrainerError(f"could not write {path} ({paths.reason(err)}); {fix}") from err


def open_image(path: str) -> Image.Image:
    """The image file at `path`, read whole through tf.io.gfile and opened by Pillow.

    Raises:
      OSError, tf.errors.OpError: the file cannot be read.
      PIL.UnidentifiedImageError: it is not an image Pillow knows.
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        return Image.open(io.BytesIO(f.read()))
