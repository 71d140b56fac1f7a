"""Every file the trainer reads or writes goes through tf.io.gfile: the same code runs on
a local folder, gs:// or TensorFlow's in-memory ram:// file system, used here.

ram:// is one file system per process, so each test takes a folder of its own name. It
has quirks gs:// has not, which these tests step around: GFile(path, "wb") appends to an
existing file instead of replacing it, and a folder never made with makedirs (only
implied by the files in it) lists empty and cannot be removed with rmtree.
"""

import gzip
import io
import os
import uuid

import numpy as np
import pytest
import tensorflow as tf
from helpers import idx_bytes, replace
from PIL import Image, ImageSequence

from trainer import animation, checkpoints, data, loaders, lock, paths, sample, train, train_state
from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.evaluation import classifier, evaluate
from trainer.train_config import TrainConfig, load_saved_config, save_config

gfile = tf.io.gfile


@pytest.fixture
def ram_dir():
    """A fresh, empty ram:// folder, deleted after the test."""
    folder = f"ram://test-{uuid.uuid4().hex}"
    gfile.makedirs(folder)
    yield folder
    gfile.rmtree(folder)


def ram_config(tiny_config, job):
    """tiny_config with every folder under the ram:// job folder `job`."""
    return replace(
        tiny_config,
        checkpoint_dir=f"{job}/ckpt",
        log_dir=f"{job}/logs",
        sample_dir=f"{job}/samples",
    )


def write_bytes(path, payload):
    gfile.makedirs(os.path.dirname(path))
    if gfile.exists(path):
        gfile.remove(path)  # ram:// would append to it
    with gfile.GFile(path, "wb") as f:
        f.write(payload)


def read_png(path):
    with gfile.GFile(path, "rb") as f:
        return np.asarray(Image.open(io.BytesIO(f.read())))


# --- one module at a time --------------------------------------------------------------


def test_config_round_trips_on_ram_and_a_missing_one_is_named(ram_dir):
    config = TrainConfig(batch_size=32, train_steps=7, seed=3, checkpoint_dir=ram_dir)
    path = save_config(config, ram_dir)
    assert path == f"{ram_dir}/config.json"
    assert gfile.listdir(ram_dir) == ["config.json"]  # the temporary name is gone
    assert load_saved_config(ram_dir) == replace(config, checkpoint_dir="MNIST-trained-model")
    with pytest.raises(TrainerError, match=rf"no config.json in '{ram_dir}/other'"):
        load_saved_config(f"{ram_dir}/other")


def test_ensure_writable_dir_creates_a_ram_folder_and_leaves_it_empty(ram_dir):
    folder = f"{ram_dir}/a/b"
    assert not gfile.exists(folder)
    assert paths.ensure_writable_dir(folder, "--log-dir") == folder
    assert gfile.isdir(folder) and gfile.listdir(folder) == []  # the probe removed


def test_ensure_writable_dir_names_the_flag_and_the_reason_locally(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(
        TrainerError,
        match=r"--sample-dir '.*file/sub' is not a writable "
        r"folder \(.*not a directory\); pass --sample-dir",
    ):
        paths.ensure_writable_dir(str(tmp_path / "file" / "sub"), "--sample-dir")


def test_reason_drops_the_path_tensorflow_puts_first_and_names_silent_errors(tmp_path):
    with pytest.raises(tf.errors.NotFoundError) as local:
        gfile.GFile(str(tmp_path / "missing"), "rb").read()
    assert paths.reason(local.value) == "No such file or directory"
    with pytest.raises(tf.errors.NotFoundError) as ram:  # ram:// gives no message
        gfile.GFile(f"ram://missing-{uuid.uuid4().hex}", "rb").read()
    assert paths.reason(ram.value) == "not found"
    assert paths.reason(OSError(28, "No space left on device")) == "No space left on device"


def test_matching_lists_names_in_a_folder_named_with_glob_characters(tmp_path):
    folder = tmp_path / "run[1]*"
    folder.mkdir()
    for name in ("ckpt-4.index", "ckpt-10.index", "checkpoint", ".hidden.index"):
        (folder / name).write_text("")
    assert paths.matching(str(folder), "ckpt-*.index") == [
        str(folder / "ckpt-10.index"),
        str(folder / "ckpt-4.index"),
    ]
    assert paths.matching(str(folder), "*.index")[-1].endswith("ckpt-4.index")  # no dot
    assert paths.matching(str(tmp_path / "missing"), "*") == []


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_idx_files_from_ram(idx_dir, ram_dir, gz):
    for name in os.listdir(idx_dir):
        with open(os.path.join(idx_dir, name), "rb") as f:
            payload = f.read()
        write_bytes(
            f"{ram_dir}/{name}" + (".gz" if gz else ""),
            gzip.compress(payload) if gz else payload,
        )
    images, labels = data.load_mnist(ram_dir, "train")
    expected_images, expected_labels = data.load_mnist(idx_dir, "train")
    assert images.dtype == np.uint8 and images.shape == (160, 28, 28)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_load_mnist_reads_an_npz_from_ram_and_names_a_corrupt_one(ram_dir, blob_images):
    labels = np.arange(len(blob_images), dtype=np.uint8) % 10
    buffer = io.BytesIO()
    np.savez(
        buffer,
        x_train=blob_images,
        y_train=labels,
        x_test=blob_images[:10],
        y_test=labels[:10],
    )
    write_bytes(f"{ram_dir}/mnist.npz", buffer.getvalue())
    images, got_labels = data.load_mnist(ram_dir, "test")
    np.testing.assert_array_equal(images, blob_images[:10])
    np.testing.assert_array_equal(got_labels, labels[:10])
    write_bytes(f"{ram_dir}/mnist.npz", b"PK\x03\x04 not a zip")
    with pytest.raises(TrainerError, match=rf"{ram_dir}/mnist.npz: cannot read"):
        data.load_mnist(ram_dir, "train")


def test_missing_idx_file_on_ram_is_named(ram_dir):
    with pytest.raises(
        TrainerError,
        match=rf"{ram_dir}/x-idx3-ubyte: cannot read \(not "
        r"found\)",
    ):
        data.read_idx(f"{ram_dir}/x-idx3-ubyte")


def test_pngs_round_trip_on_ram_and_the_folder_loads_without_the_grid(ram_dir):
    pixels = np.arange(3 * 784, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    for index, image in enumerate(pixels):
        image_utils.save_png(image, f"{ram_dir}/sample_{index:05d}.png")
    image_utils.save_png(image_utils.grid(pixels, 3), f"{ram_dir}/grid.png")
    np.testing.assert_array_equal(read_png(f"{ram_dir}/sample_00001.png"), pixels[1])
    np.testing.assert_array_equal(evaluate.load_png_folder(ram_dir), pixels)


def test_progress_gif_on_ram_plays_the_grids_in_step_order(ram_dir):
    for step, value in {936: 20, 468: 10, 1404: 30}.items():
        animation.save_grid(np.full((10, 12), value, np.uint8), ram_dir, step)
    assert animation.grid_paths(ram_dir) == [
        f"{ram_dir}/grids/step_{step:08d}.png" for step in (468, 936, 1404)
    ]
    path = animation.write_progress_gif(ram_dir)
    assert path == f"{ram_dir}/progress.gif"
    with gfile.GFile(path, "rb") as f, Image.open(io.BytesIO(f.read())) as gif:
        means = [
            int(np.asarray(frame.convert("L")).mean()) for frame in ImageSequence.Iterator(gif)
        ]
    assert means == [10, 20, 30]
    assert sorted(gfile.listdir(ram_dir)) == ["grids", "progress.gif"]  # no .partial


def test_a_ram_folder_is_not_locked_and_writes_no_lock_file(ram_dir):
    assert not lock.is_local(ram_dir) and not lock.is_local("gs://bucket/job")
    assert lock.is_local("/tmp/job") and lock.is_local("relative/ram:/x")
    assert lock.acquire(ram_dir) is None
    assert lock.acquire(ram_dir) is None  # twice: no "in use" error either
    lock.release(ram_dir)
    assert gfile.listdir(ram_dir) == []


def saved_state(config, steps):
    """A fresh state saved into config.checkpoint_dir at each of `steps` (no training)."""
    state = train_state.build_state(config)
    manager = train_state.restore_or_initialize(state, config)
    for step in steps:
        state.step.assign(step)
        state.ema_generator.trainable_variables[0].assign_add(
            tf.ones_like(state.ema_generator.trainable_variables[0])
        )
        checkpoints.save(manager, step)
    train_state.release(manager)
    return state


def test_published_model_holds_only_the_newest_checkpoint_and_samples(tiny_config, ram_dir):
    config = ram_config(tiny_config, ram_dir)
    state = saved_state(config, steps=(4, 6))
    model_dir = f"{ram_dir}/model"
    assert checkpoints.publish_model(config.checkpoint_dir, model_dir) == model_dir
    assert sorted(gfile.listdir(model_dir)) == [
        "checkpoint",
        "ckpt-6.data-00000-of-00001",
        "ckpt-6.index",
        "config.json",
    ]
    assert checkpoints.checkpoint_prefixes(model_dir) == [f"{model_dir}/ckpt-6"]
    generator, saved = loaders.load_sampler(model_dir)
    assert saved == load_saved_config(config.checkpoint_dir)
    np.testing.assert_array_equal(
        generator.trainable_variables[0], state.ema_generator.trainable_variables[0]
    )
    written = sample.write_samples(model_dir, f"{ram_dir}/samples", 3, seed=0)
    assert [read_png(path).shape for path in written] == [(28, 28)] * 3


def test_a_published_local_model_still_reads_after_its_folder_moves(tiny_config, tmp_path):
    saved_state(tiny_config, steps=(4,))
    checkpoints.publish_model(tiny_config.checkpoint_dir, str(tmp_path / "model"))
    os.rename(tmp_path / "model", tmp_path / "moved")
    assert checkpoints.checkpoint_prefixes(str(tmp_path / "moved")) == [
        str(tmp_path / "moved" / "ckpt-4")
    ]
    loaders.load_sampler(str(tmp_path / "moved"))


def test_publishing_nothing_is_a_clear_error(ram_dir):
    with pytest.raises(TrainerError, match=rf"no checkpoint in '{ram_dir}' to publish"):
        checkpoints.publish_model(ram_dir, f"{ram_dir}/model")


# --- a whole job on ram:// -------------------------------------------------------------


def write_ram_mnist(folder, images):
    """Gzipped IDX train and test splits of `images` (labels 0-9 in turn) in `folder`."""
    labels = (np.arange(len(images)) % 10).astype(np.uint8)
    for stem, array in (
        ("train-images-idx3", images),
        ("train-labels-idx1", labels),
        ("t10k-images-idx3", images),
        ("t10k-labels-idx1", labels),
    ):
        write_bytes(f"{folder}/{stem}-ubyte.gz", gzip.compress(idx_bytes(array)))


@pytest.mark.skipif(
    not os.path.exists(classifier.WEIGHTS_PATH), reason="classifier weights not trained yet"
)
def test_train_resume_sample_and_evaluate_all_on_ram(
    tiny_config, blob_images, ram_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # anything written to the current folder would show here
    config = replace(ram_config(tiny_config, ram_dir), data_dir=f"{ram_dir}/mnist")
    write_ram_mnist(config.data_dir, blob_images)

    assert train.run(config)["step"] == 6  # 160 images / 16: 10 steps an epoch
    result = train.run(replace(config, continue_train=True, train_steps=12))
    assert result["step"] == 12 and result["checkpoint"] == f"{config.checkpoint_dir}/ckpt-12"
    assert checkpoints.checkpoint_prefixes(config.checkpoint_dir)[0].endswith("ckpt-12")
    for name in ("ckpt-12.index", "ckpt-12.data-00000-of-00001", "config.json"):
        assert gfile.exists(f"{config.checkpoint_dir}/{name}"), name
    assert load_saved_config(config.checkpoint_dir).train_steps == 12
    assert lock.LOCK_FILENAME not in gfile.listdir(config.checkpoint_dir)
    assert gfile.glob(f"{config.log_dir}/events.out.tfevents.*")
    # Grids at the first run's end (6), the epoch end (10) and the resume's end (12).
    assert [os.path.basename(p) for p in animation.grid_paths(config.log_dir)] == [
        f"step_{step:08d}.png" for step in (6, 10, 12)
    ]
    assert gfile.exists(f"{config.log_dir}/progress.gif")

    written = sample.write_samples(config.checkpoint_dir, config.sample_dir, 12, seed=0)
    assert sorted(gfile.listdir(config.sample_dir)) == sorted(
        [os.path.basename(p) for p in written] + ["grid.png"]
    )
    assert read_png(written[0]).shape == (28, 28)

    from_pngs = evaluate.run(config.data_dir, 12, seed=0, png_folder=config.sample_dir)
    from_checkpoint = evaluate.run(
        config.data_dir, 12, seed=0, checkpoint_dir=config.checkpoint_dir
    )
    for results in (from_pngs, from_checkpoint):
        assert results["generated"]["count"] == 12
        assert results["real_floor"]["count"] == len(blob_images)
        assert np.isfinite(results["fd_over_floor"])
    # --sample writes what --evaluate draws: the same seed, the same 12 digits.
    assert from_pngs["generated"]["frechet_distance"] == pytest.approx(
        from_checkpoint["generated"]["frechet_distance"], rel=1e-4
    )
    assert os.listdir(tmp_path) == []
