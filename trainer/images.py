"""Pixels in and out of the networks: uint8 images <-> model range, batched inference,
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
    """uint8 (N, H, W) grey or (N, H, W, C) in [0, 255] -> float32 (N, H, W, C) in
    [-1, 1], what the networks read (the generator's tanh range)."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 3:  # grey images without their channel axis
        pixels = pixels[..., None]
    return pixels.astype(np.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
    """float images (N, H, W, C) in [-1, 1] -> uint8 in [0, 255]: (N, H, W) for grey
    images (C = 1), as Pillow and the evaluator take them, else (N, H, W, C)."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def blank(shape) -> np.ndarray:
    """A white uint8 image of `shape` ((H, W) or (H, W, C)), for an empty grid cell."""
    return np.full(shape, 255, np.uint8)


def unit_pixels(pixels) -> np.ndarray:
    """uint8 (N, H, W[, C]) in [0, 255] -> float32 (N, H * W * C) in [0, 1]: pixels as
    vectors."""
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
    """Tiles uint8 (N, H, W) grey or (N, H, W, C) colour images into one uint8
    (rows * (H + p) + p, columns * (W + p) + p[, C]) picture, row by row, on a white
    background so the images stand apart."""
    count, height, width = images.shape[:3]
    rows = -(-count // columns)
    canvas = blank(
        (rows * (height + padding) + padding, columns * (width + padding) + padding)
        + images.shape[3:]
    )
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        canvas[top : top + height, left : left + width] = image
    return canvas


def save_png(
    pixels: np.ndarray, path: str, fix: str = "free space or write to another folder"
) -> None:
    """Writes a uint8 (H, W) array as a grayscale PNG, or (H, W, 3) as a colour one.

    Raises:
      TrainerError: the file cannot be written, naming it, the reason and `fix` (what the
        user can do, e.g. "free space or pass another --sample-dir").
    """
    encoded = io.BytesIO()
    try:
        Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB").save(encoded, format="PNG")
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
