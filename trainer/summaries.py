"""TensorBoard output of a training run: scalars, sample grids and the config."""

import numpy as np
import tensorflow as tf

from trainer import images as image_utils


class Summaries:
    """Writes one run's TensorBoard event files into `log_dir`."""

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self._writer = tf.summary.create_file_writer(log_dir)

    def scalars(self, step: int, values: dict) -> None:
        with self._writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(name, value)

    def histograms(self, step: int, values: dict) -> None:
        """Logs each name -> 1-D tensor as a TensorBoard histogram."""
        with self._writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.histogram(name, value)

    def grid(self, step: int, tag: str, pixels: np.ndarray, columns: int = 8) -> np.ndarray:
        """Logs uint8 (N, H, W) grey or (N, H, W, C) colour images as one tiled picture,
        and returns that uint8 picture, (H', W') or (H', W', C)."""
        picture = image_utils.grid(pixels, columns)
        image = picture if picture.ndim == 3 else picture[:, :, None]
        with self._writer.as_default(step=step):
            tf.summary.image(tag, image[None])
        return picture

    def text(self, step: int, tag: str, text: str) -> None:
        with self._writer.as_default(step=step):
            # Markdown code block, so TensorBoard keeps the JSON's line breaks.
            tf.summary.text(tag, "```\n" + text + "\n```")

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
