"""trainer.images: pixel conversions, batched inference, grids and PNG files."""

import errno

import numpy as np
import pytest
from PIL import Image

from trainer import images as image_utils
from trainer.errors import TrainerError


def test_model_range_and_uint8_are_inverse_on_every_pixel_value():
    pixels = np.arange(256, dtype=np.uint8).repeat(4)[: 784 * 1].reshape(1, 28, 28)
    pixels = np.concatenate([pixels, 255 - pixels])
    scaled = image_utils.to_model_range(pixels)
    assert scaled.shape == (2, 28, 28, 1) and scaled.dtype == np.float32
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    np.testing.assert_array_equal(image_utils.to_uint8(scaled), pixels)


def test_unit_pixels_are_flat_vectors_in_0_1():
    pixels = np.zeros((3, 28, 28), np.uint8)
    pixels[1, 0, 0], pixels[2, 27, 27] = 255, 51
    unit = image_utils.unit_pixels(pixels)
    assert unit.shape == (3, 784) and unit.dtype == np.float32
    assert unit[1, 0] == 1.0 and unit[2, 783] == pytest.approx(0.2) and unit[0].sum() == 0


def test_in_batches_covers_every_row_once_in_order_with_tuples_too():
    seen = []

    def double_and_sum(rows):
        seen.append(len(rows))
        return rows * 2, rows.sum(axis=1)

    inputs = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
    doubled, sums = image_utils.in_batches(double_and_sum, inputs, batch=10)
    assert seen == [10, 10, 3]
    np.testing.assert_array_equal(doubled, inputs * 2)
    np.testing.assert_array_equal(sums, inputs.sum(axis=1))
    np.testing.assert_array_equal(
        image_utils.in_batches(lambda r: r + 1, inputs, batch=7), inputs + 1
    )
    # Several inputs: the same rows of each.
    np.testing.assert_array_equal(
        image_utils.in_batches(lambda a, b: a[:, 0] * 100 + b, inputs, np.arange(23), batch=4),
        inputs[:, 0] * 100 + np.arange(23),
    )


def test_a_png_round_trips_and_a_failed_write_names_file_reason_and_fix(tmp_path, monkeypatch):
    pixels = np.arange(28 * 28, dtype=np.uint32).reshape(28, 28).astype(np.uint8)
    path = str(tmp_path / "digit.png")
    image_utils.save_png(pixels, path)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), pixels)

    def full_disk(image, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(
        TrainerError,
        match=r"could not write .*digit.png \(No space left "
        r"on device\); pass another --x-dir",
    ):
        image_utils.save_png(pixels, path, "pass another --x-dir")
