import math
import os
import shutil

import numpy as np
import pytest
from helpers import REPO, assert_usage_error, slow
from PIL import Image, ImageSequence

from trainer import images as image_utils
from trainer import interpolate, loaders, task

TILE = 28 + 2  # a 28x28 digit and images.grid's 2-pixel gap


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A copy of the shipped model's folder (only read, but never touch the original)."""
    folder = tmp_path_factory.mktemp("model") / "MNIST-trained-model"
    shutil.copytree(os.path.join(REPO, "MNIST-trained-model"), folder)
    return str(folder)


def tile(picture, row, column):
    """The uint8 (28, 28) digit at (row, column) of an images.grid picture."""
    top, left = 2 + row * TILE, 2 + column * TILE
    return picture[top : top + 28, left : left + 28]


def read(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def gif_frames(path):
    with Image.open(path) as image:
        return [np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(image)]


# --- lerp and slerp -------------------------------------------------------------------


def test_lerp_hits_hand_computed_points():
    points = interpolate.lerp([0.0, 0.0], [2.0, 4.0], [0.0, 0.25, 1.0])
    np.testing.assert_array_equal(points, [[0, 0], [0.5, 1.0], [2, 4]])


def test_slerp_follows_the_quarter_circle():
    points = interpolate.slerp([1.0, 0.0], [0.0, 1.0], [0.0, 1 / 3, 0.5, 1.0])
    angles = np.radians([0, 30, 45, 90])
    np.testing.assert_allclose(points, np.stack([np.cos(angles), np.sin(angles)], 1), atol=1e-12)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints_where_lerp_shrinks_it():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 100))
    b *= np.linalg.norm(a) / np.linalg.norm(b)  # equal norms, ~74 degrees apart
    fractions = np.linspace(0, 1, 10)
    spherical = interpolate.slerp(a, b, fractions)
    np.testing.assert_allclose(spherical[0], a, rtol=1e-12)
    np.testing.assert_allclose(spherical[-1], b, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(spherical, axis=1), np.linalg.norm(a), rtol=1e-10)
    straight = np.linalg.norm(interpolate.lerp(a, b, fractions), axis=1)
    assert straight[5] < 0.85 * np.linalg.norm(a)  # why slerp: lerp's middle is short


def test_slerp_of_unequal_norms_stays_between_them():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0, 0.0])
    norms = np.linalg.norm(interpolate.slerp(a, b, np.linspace(0, 1, 11)), axis=1)
    assert norms[0] == pytest.approx(1) and norms[-1] == pytest.approx(2)
    assert np.all((norms >= 1 - 1e-12) & (norms <= 2 + 1e-12))


@pytest.mark.parametrize("b", [[1.0, 1e-5], [2.0, 0.0], [-1.0, 0.0], [-3.0, 1e-6]])
def test_slerp_falls_back_to_lerp_for_parallel_or_opposite_points(b):
    a, fractions = [1.0, 0.0], np.linspace(0, 1, 5)
    points = interpolate.slerp(a, b, fractions)
    assert np.isfinite(points).all()
    np.testing.assert_allclose(points, interpolate.lerp(a, b, fractions), atol=1e-9)


def test_interpolation_runs_row_by_row_over_batches():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4, 6))
    for function in (interpolate.lerp, interpolate.slerp):
        batched = function(a, b, np.linspace(0, 1, 7))
        assert batched.shape == (4, 7, 6)
        np.testing.assert_allclose(batched[2], function(a[2], b[2], np.linspace(0, 1, 7)))


def test_mismatched_endpoints_are_refused():
    with pytest.raises(ValueError, match=r"same shape .* got \(3,\) and \(4,\)"):
        interpolate.slerp(np.ones(3), np.ones(4), [0.5])


@pytest.mark.parametrize("spherical", [False, True])
def test_walks_start_and_end_exactly_at_the_endpoints(spherical):
    starts, ends = interpolate.endpoints(5, 100, seed=0)
    points = interpolate.walks(starts, ends, spherical)
    assert points.shape == (5, interpolate.STEPS, 100) and points.dtype == np.float32
    np.testing.assert_array_equal(points[:, 0], starts)
    np.testing.assert_array_equal(points[:, -1], ends)


def test_endpoints_are_reproducible_by_seed_and_follow_the_distribution():
    first, again = interpolate.endpoints(3, 8, seed=7), interpolate.endpoints(3, 8, seed=7)
    other = interpolate.endpoints(3, 8, seed=8)
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))
    starts, ends = interpolate.endpoints(2000, 8, seed=0, distribution="uniform")
    assert starts.min() >= -1 and ends.max() <= 1


# --- the writer, on the shipped model --------------------------------------------------


def test_png_grid_is_k_walks_of_10_steps_with_the_generators_endpoints(shipped, tmp_path):
    count, seed = 3, 11
    paths = interpolate.write_walks(shipped, str(tmp_path), count, seed)
    assert paths == [str(tmp_path / "interpolation.png")]
    picture = read(paths[0])
    assert picture.shape == (count * TILE + 2, 10 * TILE + 2)
    # The first and last digit of each walk are the generator's images of its endpoints.
    generator, config = loaders.load_sampler(shipped)
    starts, ends = interpolate.endpoints(count, config.latent_dim, seed)
    for column, z in ((0, starts), (9, ends)):
        expected = image_utils.to_uint8(generator(z, training=False))
        for row in range(count):
            # Batch size can move float rounding by a level; a wrong z moves ~every pixel.
            diff = np.abs(tile(picture, row, column).astype(int) - expected[row])
            assert diff.max() <= 1, (row, column)
    # The steps between are other digits: the walk moves.
    assert not np.array_equal(tile(picture, 0, 0), tile(picture, 0, 5))


def test_gif_plays_the_walks_one_step_a_frame(shipped, tmp_path):
    count = 5
    paths = interpolate.write_walks(shipped, str(tmp_path), count, seed=2, gif=True)
    assert [os.path.basename(p) for p in paths] == [
        "interpolation.png",
        "interpolation.gif",
    ]
    columns = math.ceil(math.sqrt(count))  # 3: a 3x2 grid of walks in each frame
    with Image.open(paths[1]) as gif:
        assert gif.n_frames == 10 and gif.info["loop"] == 0
        assert gif.size == (columns * TILE + 2, 2 * TILE + 2)
    picture, frames = read(paths[0]), gif_frames(paths[1])
    for step, frame in enumerate(frames):  # frame t holds step t of every walk
        for walk in range(count):
            np.testing.assert_array_equal(
                tile(frame, walk // columns, walk % columns), tile(picture, walk, step)
            )


@slow
def test_walks_are_reproducible_by_seed(shipped, tmp_path):
    def picture(seed, folder):
        return read(interpolate.write_walks(shipped, str(tmp_path / folder), 2, seed)[0])

    assert np.array_equal(picture(4, "a"), picture(4, "b"))
    assert not np.array_equal(picture(4, "a"), picture(5, "c"))


def test_slerp_changes_the_path_but_not_the_endpoints(shipped, tmp_path):
    straight = read(interpolate.write_walks(shipped, str(tmp_path / "lerp"), 2, seed=3)[0])
    curved = read(
        interpolate.write_walks(shipped, str(tmp_path / "slerp"), 2, seed=3, spherical=True)[0]
    )
    for row in range(2):
        for column in (0, 9):
            np.testing.assert_array_equal(tile(straight, row, column), tile(curved, row, column))
    assert not np.array_equal(tile(straight, 0, 5), tile(curved, 0, 5))


# --- the command line ------------------------------------------------------------------


def test_cli_writes_the_png_and_gif_and_says_so(shipped, tmp_path, capsys):
    out = tmp_path / "walks"
    assert (
        task.main(
            [
                "--interpolate",
                "4",
                "--slerp",
                "--gif",
                "--checkpoint-dir",
                shipped,
                "--sample-dir",
                str(out),
                "--seed",
                "9",
            ]
        )
        == 0
    )
    assert sorted(os.listdir(out)) == ["interpolation.gif", "interpolation.png"]
    assert capsys.readouterr().out.strip().splitlines() == [
        f"wrote interpolation.png and interpolation.gif (4 walks of 10 steps) to {out}"
    ]
    assert read(out / "interpolation.png").shape == (4 * TILE + 2, 10 * TILE + 2)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--interpolate", "0"], "--interpolate must be at least 1, got 0"),
        (["--interpolate", "-3"], "--interpolate must be at least 1, got -3"),
        (["--interpolate", "many"], "invalid int value: 'many'"),
        (["--slerp"], "--slerp only applies with --interpolate"),
        (["--gif", "--sample", "3"], "--gif only applies with --interpolate"),
    ],
)
def test_bad_walk_flags_are_usage_errors(argv, message, capsys):
    assert_usage_error(task.main, argv, message, capsys)


def test_no_checkpoint_is_one_line_and_exit_1(tmp_path, capsys):
    assert (
        task.main(
            [
                "--interpolate",
                "2",
                "--checkpoint-dir",
                str(tmp_path / "none"),
                "--sample-dir",
                str(tmp_path / "out"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no checkpoint in")
