import os

import numpy as np
import pytest
from helpers import fill_disk_at
from PIL import Image

from trainer import sample
from trainer.errors import TrainerError


def test_writes_n_grayscale_28x28_pngs_and_a_grid(tiny_trained, tmp_path):
    out = tmp_path / "out"
    paths = sample.write_samples(tiny_trained.checkpoint_dir, str(out), 12, seed=0)
    assert [os.path.basename(p) for p in paths] == [f"sample_{i:05d}.png" for i in range(12)]
    for path in paths:
        with Image.open(path) as image:
            assert image.mode == "L" and image.size == (28, 28)
    with Image.open(out / "grid.png") as grid:
        # 10 columns x 2 rows of 28x28 tiles with 2-pixel gaps.
        assert grid.size == (10 * 30 + 2, 2 * 30 + 2)


def test_samples_are_reproducible_by_seed(tiny_trained, tmp_path):
    def pixels(seed, folder):
        paths = sample.write_samples(tiny_trained.checkpoint_dir, str(tmp_path / folder), 3, seed)
        return [np.asarray(Image.open(p)) for p in paths]

    first, again, other = pixels(5, "a"), pixels(5, "b"), pixels(6, "c")
    assert all(np.array_equal(x, y) for x, y in zip(first, again))
    assert not all(np.array_equal(x, y) for x, y in zip(first, other))


def test_no_checkpoint_says_how_to_get_one(tmp_path):
    with pytest.raises(TrainerError, match="no checkpoint in .*--data-dir"):
        sample.write_samples(str(tmp_path), str(tmp_path / "out"), 4, seed=0)


def test_a_failed_write_names_the_file_and_the_reason(tiny_trained, tmp_path, monkeypatch):
    fill_disk_at(monkeypatch, "sample_00002.png")
    with pytest.raises(
        TrainerError,
        match=r"sample_00002.png \(No space left on device\); "
        r"free space or pass another --sample-dir",
    ):
        sample.write_samples(tiny_trained.checkpoint_dir, str(tmp_path / "out"), 5, seed=0)
