"""Generator output -> pixels a person can look at: uint8 images, grids and PNG files."""

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
    """float images in [-1, 1], shape (N, 28, 28[, 1]) -> uint8 (N, 28, 28) in [0, 255]."""
    images = np.asarray(images, dtype=np.float32).reshape(len(images), 28, 28)
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def grid(images: np.ndarray, columns: int, padding: int = 2) -> np.ndarray:
    """Tiles uint8 (N, H, W) images into one uint8 (rows * (H + p) + p, ...) picture,
    row by row, on a white background so digits stand apart."""
    count, height, width = images.shape
    rows = -(-count // columns)
    canvas = np.full((rows * (height + padding) + padding,
                      columns * (width + padding) + padding), 255, dtype=np.uint8)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        canvas[top:top + height, left:left + width] = image
    return canvas


def save_png(pixels: np.ndarray, path: str) -> None:
    """Writes a uint8 (H, W) array as a grayscale PNG."""
    Image.fromarray(pixels, mode="L").save(path)
