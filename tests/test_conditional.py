"""A class-conditional model end to end through the modes that draw from it: --sample
with and without --digit, --interpolate's two kinds of walk, and their errors."""

import os

import numpy as np
import pytest
from helpers import blob_images, replace, resolved, tiny_config
from PIL import Image

from trainer import flags, generation, interpolate, loaders, model, sample, task, train
from trainer.errors import TrainerError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny conditional run's checkpoint folder (blob images, labels i mod 10)."""
    config = replace(
        tiny_config(tmp_path_factory.mktemp("conditional")),
        conditional=True,
        projection=True,
        learning_rate=2e-4,
    )
    images = blob_images()
    train.run(config, images=images, labels=(np.arange(len(images)) % 10).astype(np.uint8))
    return config


@pytest.fixture(scope="module")
def unconditional(tmp_path_factory):
    config = tiny_config(tmp_path_factory.mktemp("unconditional"))
    train.run(config, images=blob_images())
    return config


def pixels(paths):
    return np.stack([np.asarray(Image.open(p)) for p in paths])


def drawn(config, labels, seed=0):
    """What the sampler's generator draws for `labels` with --seed `seed`."""
    generator, saved = loaders.load_sampler(config.checkpoint_dir)
    return np.concatenate(
        list(
            generation.generate(
                generator, len(labels), saved.latent_dim, seed, labels=np.asarray(labels)
            )
        )
    )


def test_digit_writes_that_many_images_of_that_digit_named_so(trained, tmp_path):
    paths = sample.write_samples(trained.checkpoint_dir, str(tmp_path), 12, 0, digit=7)
    assert [os.path.basename(p) for p in paths] == [f"sample_{i:05d}_digit7.png" for i in range(12)]
    np.testing.assert_array_equal(pixels(paths), drawn(trained, [7] * 12))
    assert not np.array_equal(pixels(paths), drawn(trained, [3] * 12))  # the digit counts
    with Image.open(tmp_path / "grid.png") as grid:  # 10 a row, as without a digit
        assert grid.size == (10 * 30 + 2, 2 * 30 + 2)


def test_without_digit_every_digit_gets_an_equal_share_and_a_grid_row(trained, tmp_path):
    paths = sample.write_samples(trained.checkpoint_dir, str(tmp_path), 64, 0)
    digits = [int(p[-5]) for p in paths]
    assert [digits.count(d) for d in range(10)] == [7, 7, 7, 7, 6, 6, 6, 6, 6, 6]
    assert digits == sorted(digits)
    np.testing.assert_array_equal(pixels(paths), drawn(trained, digits))
    with Image.open(tmp_path / "grid.png") as grid:
        picture = np.asarray(grid)
    assert picture.shape == (10 * 30 + 2, 7 * 30 + 2)  # a row per digit, 7 columns
    for digit in range(10):  # row d holds digit d's images, then blank cells
        first = digits.index(digit)
        for column in range(7):
            cell = picture[2 + 30 * digit : 30 * digit + 30, 2 + 30 * column : 30 * column + 30]
            index = first + column
            if column < digits.count(digit):
                np.testing.assert_array_equal(cell, pixels([paths[index]])[0])
            else:
                assert (cell == 255).all()


def test_balanced_labels_share_every_count_out_as_evenly_as_possible():
    for count in (1, 9, 10, 64, 1000, 1003):
        labels = generation.balanced_labels(count, 10)
        shares = np.bincount(labels, minlength=10)
        assert len(labels) == count and shares.max() - shares.min() <= (count % 10 > 0)
        assert (np.diff(labels) >= 0).all()


def test_a_digit_of_an_unconditional_model_is_one_clear_error(unconditional, tmp_path):
    with pytest.raises(TrainerError, match="--digit 7: the model in .* is unconditional"):
        sample.write_samples(unconditional.checkpoint_dir, str(tmp_path), 3, 0, digit=7)
    with pytest.raises(TrainerError, match="is unconditional"):
        interpolate.write_walks(unconditional.checkpoint_dir, str(tmp_path), 2, 0, digit=7)


@pytest.mark.parametrize("digit", [-1, 10, 2.5])
def test_a_digit_outside_the_models_classes_is_refused(trained, tmp_path, digit):
    with pytest.raises(TrainerError, match="--digit must be one of 0-9 for the model in"):
        sample.write_samples(trained.checkpoint_dir, str(tmp_path), 3, 0, digit=digit)
    with pytest.raises(TrainerError, match="--digit must be one of 0-9 for the model in"):
        interpolate.write_walks(trained.checkpoint_dir, str(tmp_path), 2, 0, digit=digit)


def test_cli_digit_outside_the_models_classes_is_one_line(trained, tmp_path, capsys):
    argv = ["--sample", "3", "--digit", "10", "--checkpoint-dir", trained.checkpoint_dir]
    assert task.main(argv + ["--sample-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--digit must be one of 0-9 for the model in" in err[0], err


def test_cli_digit_on_an_unconditional_model_is_one_line(unconditional, tmp_path, capsys):
    assert (
        task.main(
            [
                "--sample",
                "3",
                "--digit",
                "4",
                "--checkpoint-dir",
                unconditional.checkpoint_dir,
                "--sample-dir",
                str(tmp_path),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is unconditional" in err[0]


def test_cli_digit_samples_and_says_so(trained, tmp_path, capsys):
    assert (
        task.main(
            [
                "--sample",
                "5",
                "--digit",
                "2",
                "--checkpoint-dir",
                trained.checkpoint_dir,
                "--sample-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert f"wrote 5 samples of class 2 and grid.png to {tmp_path}" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["grid.png"] + [
        f"sample_{i:05d}_digit2.png" for i in range(5)
    ]


def test_digit_reads_the_shipped_conditional_model_unless_a_folder_is_named():
    def folder(*argv):
        return resolved(*argv).checkpoint_dir

    assert folder("--sample", "4", "--digit", "7") == os.path.join(
        "MNIST-trained-model", "conditional"
    )
    assert folder("--sample", "4") == "MNIST-trained-model"
    assert folder("--sample", "4", "--digit", "7", "--checkpoint-dir", "mine") == "mine"
    assert folder("--sample", "4", "--digit", "7", "--job-dir", "job") == os.path.join(
        "job", "checkpoints"
    )


def test_walks_between_digits_hold_z_and_walks_between_z_hold_the_digit(trained, tmp_path):
    paths = interpolate.write_walks(trained.checkpoint_dir, str(tmp_path), 3, seed=4)
    assert [os.path.basename(p) for p in paths] == [
        "interpolation.png",
        "interpolation_digits.png",
    ]
    generator, config = loaders.load_sampler(trained.checkpoint_dir)
    starts, ends = interpolate.endpoints(3, config.latent_dim, 4)
    fixed, (first, last) = interpolate.walk_digits(3, seed=4)
    np.testing.assert_array_equal(fixed, [0, 1, 2])
    assert (first != last).all()

    def render(z, digits):
        return interpolate.render(
            generator, z[:, None], np.eye(10, dtype=np.float32)[digits][:, None]
        )[:, 0]

    def cells(name):  # (3 walks, 10 steps, 28, 28) from the PNG
        picture = np.asarray(Image.open(tmp_path / name))
        return np.stack(
            [
                [picture[2 + 30 * r : 30 * r + 30, 2 + 30 * c : 30 * c + 30] for c in range(10)]
                for r in range(3)
            ]
        )

    walks, digit_walks = cells("interpolation.png"), cells("interpolation_digits.png")
    # Between z: each walk's ends are its start and end z drawn as that walk's digit.
    np.testing.assert_array_equal(walks[:, 0], render(starts, fixed))
    np.testing.assert_array_equal(walks[:, -1], render(ends, fixed))
    # Between digits: the start z throughout, from its first digit to its last.
    np.testing.assert_array_equal(digit_walks[:, 0], render(starts, first))
    np.testing.assert_array_equal(digit_walks[:, -1], render(starts, last))
    # and between them the label vectors mixed: step 5 is 5/9 of the way.
    mixed = interpolate.walks(np.eye(10)[first], np.eye(10)[last])[:, 5:6]
    np.testing.assert_allclose(mixed[:, 0, [first[0], last[0]]][0], [4 / 9, 5 / 9], rtol=1e-6)
    np.testing.assert_array_equal(
        digit_walks[:, 5], interpolate.render(generator, starts[:, None], mixed)[:, 0]
    )


def test_interpolate_digit_walks_that_digit_and_starts_every_digit_walk_there(trained, tmp_path):
    paths = interpolate.write_walks(
        trained.checkpoint_dir, str(tmp_path), 4, seed=0, digit=6, gif=True
    )
    assert [os.path.basename(p) for p in paths] == [
        "interpolation.png",
        "interpolation_digits.png",
        "interpolation.gif",
        "interpolation_digits.gif",
    ]
    fixed, (first, last) = interpolate.walk_digits(4, seed=0, digit=6)
    assert (fixed == 6).all() and (first == 6).all() and (last != 6).all()


def test_conditional_and_unconditional_sampling_share_one_path(trained):
    generator, _ = loaders.load_sampler(trained.checkpoint_dir)
    assert model.num_classes(generator) == 10
    assert generation.labels_for(generator, 3, None, "x").tolist() == [0, 1, 2]
    assert generation.labels_for(generator, 3, 5, "x").tolist() == [5, 5, 5]


def test_class_by_index_or_by_a_name_of_the_models(trained, tmp_path):
    assert flags.class_index(trained.checkpoint_dir, None) is None
    assert flags.class_index(trained.checkpoint_dir, "7") == 7
    assert flags.class_index(trained.checkpoint_dir, "3") == 3
    with pytest.raises(TrainerError, match="'seven' is not one of the classes .*: 0, 1, 2"):
        flags.class_index(trained.checkpoint_dir, "seven")
