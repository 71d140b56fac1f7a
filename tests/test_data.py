import gzip

import numpy as np
import pytest
import tensorflow as tf
from helpers import FASHION_DIR, MNIST_DIR, idx_bytes, needs_fashion, needs_mnist

from trainer import data
from trainer.errors import TrainerError


def write(path, payload, gz):
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return str(path)


def fake_split(count, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, count, dtype=np.uint8),
    )


def write_idx_dir(folder, sep="-", gz=True, count=5):
    images, labels = fake_split(count)
    ext = ".gz" if gz else ""
    write(folder / f"train-images{sep}idx3-ubyte{ext}", idx_bytes(images), gz)
    write(folder / f"train-labels{sep}idx1-ubyte{ext}", idx_bytes(labels), gz)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("sep", ["-", "."])
def test_reads_idx_files_gz_or_raw_in_both_spellings(tmp_path, gz, sep):
    images, labels = write_idx_dir(tmp_path, sep=sep, gz=gz)
    got_images, got_labels = data.load_mnist(str(tmp_path), "train")
    assert got_images.dtype == np.uint8 and got_images.shape == (5, 28, 28)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_reads_keras_npz(tmp_path):
    (x_train, y_train), (x_test, y_test) = fake_split(6), fake_split(3, seed=1)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
    )
    got_x, got_y = data.load_mnist(str(tmp_path), "test")
    np.testing.assert_array_equal(got_x, x_test)
    np.testing.assert_array_equal(got_y, y_test)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_file_names_the_file(tmp_path, gz):
    images, _ = fake_split(4)
    path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images)[:-100], gz)
    with pytest.raises(TrainerError, match="truncated") as err:
        data.read_idx(path)
    assert path in str(err.value)


@pytest.mark.parametrize("gz", [True, False])
def test_wrong_magic_is_rejected(tmp_path, gz):
    images, _ = fake_split(2)
    path = write(tmp_path / "x-idx3-ubyte", idx_bytes(images, magic=0x0D03), gz)
    with pytest.raises(TrainerError, match="not an MNIST IDX file"):
        data.read_idx(path)


def test_extra_bytes_are_rejected(tmp_path):
    images, _ = fake_split(2)
    path = write(tmp_path / "x-idx3-ubyte", idx_bytes(images) + b"\0", False)
    with pytest.raises(TrainerError, match="longer than its header"):
        data.read_idx(path)


def test_huge_record_count_is_rejected_before_allocating(tmp_path):
    header = (0x0803).to_bytes(4, "big") + (10**9).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = write(tmp_path / "x-idx3-ubyte.gz", header + b"\0" * 784, True)
    with pytest.raises(TrainerError, match="1000000000 records"):
        data.read_idx(path)


def test_non_28x28_images_are_rejected(tmp_path):
    path = write(tmp_path / "x-idx3-ubyte", idx_bytes(np.zeros((2, 32, 32), np.uint8)), False)
    with pytest.raises(TrainerError, match="32x32"):
        data.read_idx(path)


def test_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    with pytest.raises(TrainerError, match="train-images-idx3-ubyte.gz"):
        data.read_idx(str(path))


def test_label_count_mismatch_is_rejected(tmp_path):
    images, labels = fake_split(5)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(images), True)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(labels[:3]), True)
    with pytest.raises(TrainerError, match="3 labels for 5 images"):
        data.load_mnist(str(tmp_path))


def test_images_without_their_labels_file_name_the_missing_file(tmp_path):
    images, _ = fake_split(5)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(images), True)
    with pytest.raises(TrainerError, match="no labels file .*train-labels-idx1-ubyte.gz"):
        data.load_mnist(str(tmp_path))


def test_labelled_batches_keep_each_image_with_its_label():
    # Image i is all pixel value i and has label i mod 10: every batch must pair them.
    images = np.arange(60, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    labels = (np.arange(60) % 10).astype(np.uint8)
    for epoch, start in ((0, 0), (1, 2)):
        labelled = list(
            data.epoch_batches(images, 8, seed=3, epoch=epoch, start_batch=start, labels=labels)
        )
        unlabelled = list(data.epoch_batches(images, 8, seed=3, epoch=epoch, start_batch=start))
        assert len(labelled) == len(unlabelled) == 60 // 8 - start
        for (pixels, digits), (same, none) in zip(labelled, unlabelled):
            np.testing.assert_array_equal(pixels, same)  # the order labels do not change
            assert none is None
            index = np.round(pixels.numpy()[:, 0, 0, 0] * 127.5 + 127.5).astype(int)
            assert digits.dtype == tf.int32
            np.testing.assert_array_equal(digits.numpy(), index % 10)


def test_folder_without_data_says_which_files_to_put_there(tmp_path):
    with pytest.raises(TrainerError, match="train-images-idx3-ubyte.gz"):
        data.load_mnist(str(tmp_path))


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(TrainerError, match="not a folder"):
        data.load_mnist(str(tmp_path / "nope"))


def test_corrupt_npz_names_the_file(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(TrainerError, match="mnist.npz"):
        data.load_mnist(str(tmp_path))


def test_offline_without_cache_says_where_to_put_the_files(monkeypatch, tmp_path):
    import tensorflow as tf

    monkeypatch.setattr(data, "KERAS_CACHE", str(tmp_path / "mnist.npz"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(tf.keras.utils, "get_file", offline)
    with pytest.raises(TrainerError, match="offline, put mnist.npz in .*--data-dir"):
        data.load_mnist(None)


def test_uses_keras_cache_when_present(monkeypatch, tmp_path):
    x, y = fake_split(4)
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    monkeypatch.setattr(data, "KERAS_CACHE", str(tmp_path / "mnist.npz"))
    np.testing.assert_array_equal(data.load_mnist(None)[0], x)


def test_dataset_batches_are_float32_in_range_and_shaped():
    images = np.tile(np.arange(256, dtype=np.uint8)[:, None, None], (1, 28, 28))[:250]
    batches = [real for real, _ in data.epoch_batches(images, batch_size=32, seed=0, epoch=0)]
    assert len(batches) == 250 // 32  # the partial batch is dropped
    batch = batches[0].numpy()
    assert batch.dtype == np.float32 and batch.shape == (32, 28, 28, 1)
    values = np.concatenate([b.numpy().ravel() for b in batches])
    assert values.min() >= -1.0 and values.max() <= 1.0
    # 0 -> -1 and 255 -> 1 exactly.
    both = data.epoch_batches(np.stack([images[0], images[-1] * 0 + 255]), 2, 0, 0)
    assert sorted(np.unique(next(iter(both))[0].numpy())) == [-1.0, 1.0]


def test_dataset_reshuffles_each_epoch_and_resumes_mid_epoch():
    images = np.arange(64, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)

    def order(epoch, start=0):
        return [
            int(b[0, 0, 0, 0] * 127.5 + 127.5 + 0.5)
            for b, _ in data.epoch_batches(images, 1, seed=3, epoch=epoch, start_batch=start)
        ]

    epoch0 = order(0)
    assert sorted(epoch0) == list(range(64)) and epoch0 != list(range(64))
    assert order(1) != epoch0 and order(0) == epoch0
    assert order(0, start=10) == epoch0[10:]


def test_steps_per_epoch_needs_one_batch():
    assert data.steps_per_epoch(60000, 128) == 468
    with pytest.raises(TrainerError, match="--batch-size"):
        data.steps_per_epoch(10, 16)


@needs_mnist
def test_shared_mnist_loads_with_official_sizes():
    train_x, train_y = data.load_mnist(MNIST_DIR, "train")
    test_x, test_y = data.load_mnist(MNIST_DIR, "test")
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)
    assert train_y.shape == (60000,) and set(np.unique(test_y)) == set(range(10))


def test_zero_record_header_is_called_empty(tmp_path):
    header = (0x0803).to_bytes(4, "big") + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    path = write(tmp_path / "x-idx3-ubyte", header, False)
    with pytest.raises(TrainerError, match="claims 0 records; the file is empty"):
        data.read_idx(path)


def test_pair_distances_per_digit_and_pooled():
    # Digit 0: one image drawn 20 times, pairs never differ. Digit 1: half black, half
    # white, so a random pair differs by the whole [-1, 1] range (2) half the time.
    # Digits 2-9: mid grey, or absent (9), which has nothing to pair.
    images = np.concatenate(
        [
            np.full((20, 28, 28), 7, np.uint8),
            np.zeros((10, 28, 28), np.uint8),
            np.full((10, 28, 28), 255, np.uint8),
            np.full((70, 28, 28), 128, np.uint8),
        ]
    )
    labels = np.concatenate([np.zeros(20), np.ones(20), np.repeat(np.arange(2, 9), 10)])
    per_digit = data.pair_distances(images, labels.astype(np.uint8), seed=0)
    assert per_digit.shape == (10,) and per_digit.dtype == np.float32
    assert per_digit[0] == 0 and (per_digit[2:9] == 0).all() and per_digit[9] == np.inf
    assert 0.9 < per_digit[1] < 1.1, per_digit[1]
    np.testing.assert_array_equal(per_digit, data.pair_distances(images, labels, seed=0))
    pooled = data.pair_distances(images)
    assert pooled.shape == (1,) and 0.3 < pooled[0] < 1.0, pooled


def write_split(folder, split, labels):
    """Blank images with these labels as one split's IDX files (gz: a few KB)."""
    stem = {"train": "train", "test": "t10k"}[split]
    images = np.zeros((len(labels), 28, 28), np.uint8)
    write(folder / f"{stem}-images-idx3-ubyte.gz", idx_bytes(images), gz=True)
    write(folder / f"{stem}-labels-idx1-ubyte.gz", idx_bytes(np.asarray(labels, np.uint8)), gz=True)


def published_labels(dataset, split):
    return np.repeat(np.arange(10), data.LABEL_COUNTS[(dataset, split)]).astype(np.uint8)


@pytest.mark.parametrize("split", ["train", "test"])
def test_each_sets_files_are_known_by_their_label_counts(split):
    for dataset in ("mnist", "fashion-mnist"):
        assert data.identify(published_labels(dataset, split), split) == dataset
    assert data.identify(np.arange(100) % 10, split) is None  # a subset: no verdict


def test_fashion_files_under_the_mnist_names_are_not_trained_on_as_mnist(tmp_path):
    write_split(tmp_path, "test", published_labels("fashion-mnist", "test"))
    with pytest.raises(TrainerError) as error:
        data.load("mnist", str(tmp_path), "test")
    assert "holds fashion-mnist's test files, not mnist's" in str(error.value)
    assert "--dataset fashion-mnist" in str(error.value)
    images, labels = data.load("fashion-mnist", str(tmp_path), "test")
    assert images.shape == (10_000, 28, 28) and np.bincount(labels).tolist() == [1000] * 10


def test_mnist_files_are_not_read_as_fashion(tmp_path):
    write_split(tmp_path, "test", published_labels("mnist", "test"))
    with pytest.raises(TrainerError, match="holds mnist's test files, not fashion-mnist's"):
        data.load("fashion-mnist", str(tmp_path), "test")


def test_a_subset_loads_as_the_set_named(tmp_path):
    write_split(tmp_path, "train", np.arange(50) % 10)
    assert len(data.load("fashion-mnist", str(tmp_path), "train")[0]) == 50
    with pytest.raises(ValueError, match="dataset must be one of mnist, fashion-mnist"):
        data.load("cifar", str(tmp_path), "train")


def test_fashion_offline_without_cache_says_where_to_put_the_files(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "KERAS_FASHION_CACHE", str(tmp_path / "fashion-mnist"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")

    monkeypatch.setattr(tf.keras.utils, "get_file", offline)
    with pytest.raises(TrainerError, match="could not download Fashion-MNIST .* --data-dir"):
        data.load("fashion-mnist", None, "train")


@needs_fashion
def test_shared_fashion_mnist_loads_and_is_refused_as_mnist():
    images, labels = data.load("fashion-mnist", FASHION_DIR, "train")
    assert images.shape == (60_000, 28, 28) and np.bincount(labels).tolist() == [6000] * 10
    with pytest.raises(TrainerError, match="holds fashion-mnist's train files"):
        data.load("mnist", FASHION_DIR, "train")


def test_mirror_adds_every_image_flipped_left_to_right():
    images = np.arange(4 * 2 * 3, dtype=np.uint8).reshape(4, 2, 3) * 10  # 4 distinct images
    batches = list(data.epoch_batches(images, 2, seed=3, epoch=0, mirror=True))
    assert len(batches) == 4  # 8 images: each one and its mirror
    seen = np.concatenate([batch.numpy()[..., 0] for batch, _ in batches])
    expected = data.image_utils.to_model_range(images)[..., 0]
    mirrored = expected[:, :, ::-1]
    for image in np.concatenate([expected, mirrored]):  # every one exactly once
        assert sum(np.array_equal(image, other) for other in seen) == 1
    again = list(data.epoch_batches(images, 2, seed=3, epoch=0, start_batch=2, mirror=True))
    np.testing.assert_array_equal(again[0][0], batches[2][0])  # resumes mid-epoch
