"""A named data set (MNIST, Fashion-MNIST) -> uint8 arrays of its image spec -> batches
of float32 in [-1, 1].

Both sets come as the same four IDX files under the same names; `load` tells them apart
by their label counts, so one is never trained on, or judged, as the other. Reads the
four IDX files (`.gz` or raw; `train-images-idx3-ubyte` or
`train-images.idx3-ubyte` spellings) or a Keras `mnist.npz`, from a local folder, gs://
or ram:// (through tf.io.gfile). Headers are checked before anything is allocated, so a
corrupt or truncated file is one clear error naming it.
"""

import contextlib
import gzip
import logging
import lzma
import math
import os
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from trainer import images as image_utils
from trainer import paths
from trainer.errors import TrainerError
from trainer.image_spec import DATASET_SPECS, MNIST

KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
# SHA-256 Keras publishes for mnist.npz (keras.datasets.mnist.load_data).
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
KERAS_CACHE = os.path.join("~", ".keras", "datasets", "mnist.npz")
# Where Keras keeps Fashion-MNIST (keras.datasets.fashion_mnist): its four IDX files.
KERAS_FASHION_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
KERAS_FASHION_CACHE = os.path.join("~", ".keras", "datasets", "fashion-mnist")
_FASHION_FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
# Each set's label counts, class 0 first, in its published files: what tells the two
# sets apart, since Fashion-MNIST's files carry MNIST's names.
LABEL_COUNTS = {
    ("mnist", "train"): (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    ("mnist", "test"): (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    ("fashion-mnist", "train"): (6000,) * 10,
    ("fashion-mnist", "test"): (1000,) * 10,
}

IMAGE_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned byte, 1 dimension
MAX_RECORDS = 1_000_000  # MNIST has 70,000; a larger header is corrupt, not data.
_CHUNK = 1 << 20

_STEMS = {"train": ("train-images", "train-labels"), "test": ("t10k-images", "t10k-labels")}


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file of MNIST images (N, H, W) or labels (N,), uint8.

    Raises:
      TrainerError: naming the file, if it is missing, not IDX, not MNIST's size,
        truncated or longer than its header says.
    """
    try:
        with _open_idx(path) as f:
            header = f.read(4)
            if len(header) < 4:
                raise TrainerError(f"{path}: truncated IDX header; re-download the file")
            magic = int.from_bytes(header, "big")
            if magic == IMAGE_MAGIC:
                shape = _read_dims(f, path, 3)
                if shape[1:] != (MNIST.height, MNIST.width):
                    raise TrainerError(
                        f"{path}: images are {shape[1]}x{shape[2]}, expected MNIST's "
                        f"{MNIST.height}x{MNIST.width}"
                    )
            elif magic == LABEL_MAGIC:
                shape = _read_dims(f, path, 1)
            else:
                raise TrainerError(
                    f"{path}: not an MNIST IDX file (magic number "
                    f"0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x} or "
                    f"0x{LABEL_MAGIC:08x}); re-download it"
                )
            data = _read_exactly(f, path, int(np.prod(shape)))
    except (OSError, EOFError, zlib.error, tf.errors.OpError) as err:
        raise TrainerError(
            f"{path}: cannot read ({paths.reason(err)}); re-download the file"
        ) from err
    return data.reshape(shape)


@contextlib.contextmanager
def _open_idx(path):
    """The IDX file at `path` as a binary stream, gunzipped if it ends in .gz."""
    with tf.io.gfile.GFile(path, "rb") as raw:
        if not path.endswith(".gz"):
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            yield unzipped


def _read_dims(f, path, ndim):
    raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise TrainerError(f"{path}: truncated IDX header; re-download the file")
    shape = tuple(int.from_bytes(raw[4 * i : 4 * i + 4], "big") for i in range(ndim))
    if shape[0] == 0:
        raise TrainerError(
            f"{path}: header claims 0 records; the file is empty or corrupt, re-download it"
        )
    if shape[0] > MAX_RECORDS:
        raise TrainerError(
            f"{path}: header claims {shape[0]} records, more than MNIST "
            f"could hold ({MAX_RECORDS}); the file is corrupt"
        )
    return shape


def _read_exactly(f, path, size):
    """Reads `size` bytes in chunks, so a lying header cannot force a huge allocation."""
    buffer = bytearray()
    while len(buffer) < size:
        chunk = f.read(min(_CHUNK, size - len(buffer)))
        if not chunk:
            raise TrainerError(
                f"{path}: truncated: {len(buffer)} of {size} data bytes; re-download the file"
            )
        buffer += chunk
    if f.read(1):
        raise TrainerError(
            f"{path}: longer than its header says ({size} data bytes); the file is corrupt"
        )
    return np.frombuffer(bytes(buffer), dtype=np.uint8)


def _find_idx(data_dir, stem, kind):
    """Path of e.g. train-images-idx3-ubyte[.gz] or train-images.idx3-ubyte[.gz]."""
    for sep in ("-", "."):
        for ext in (".gz", ""):
            path = os.path.join(data_dir, f"{stem}{sep}{kind}-ubyte{ext}")
            if tf.io.gfile.exists(path):
                return path
    return None


def read_npz(path: str, split: str):
    """Reads x_{split} (N, H, W) and y_{split} (N,) uint8 from a Keras mnist.npz.

    Reads the zip members itself rather than through np.load, whose npz reader sizes
    its buffer from the .npy header before reading and returns raw bytes for a member
    that is not .npy; nothing is unpickled.

    Raises:
      TrainerError: naming the file, if it is missing, not an npz of integer arrays,
        corrupt, or not MNIST's shapes and labels.
    """
    try:
        with tf.io.gfile.GFile(path, "rb") as raw, zipfile.ZipFile(raw) as archive:
            images = _read_npy_member(archive, f"x_{split}", path)
            labels = _read_npy_member(archive, f"y_{split}", path)
    except (
        OSError,
        ValueError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        zipfile.BadZipFile,
        zlib.error,
        lzma.LZMAError,
        tf.errors.OpError,
    ) as err:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression.
        raise TrainerError(
            f"{path}: cannot read ({paths.reason(err)}); re-download the file"
        ) from err
    expected = (MNIST.height, MNIST.width)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != expected:
        raise TrainerError(
            f"{path}: x_{split} is {images.dtype} {images.shape}, expected uint8 (N, "
            f"{expected[0]}, {expected[1]})"
        )
    return images, _check_labels(path, labels, len(images))


def _read_npy_member(archive, name, path):
    """The integer array `name`.npy of an open npz; its header checked before its data is
    read, and the data read in chunks, so a lying header cannot force a huge allocation."""
    try:
        member = archive.open(f"{name}.npy")
    except KeyError as err:
        raise TrainerError(f"{path}: no {name} array; is it the Keras mnist.npz?") from err
    with member:
        version = np.lib.format.read_magic(member)
        if version not in _NPY_HEADER_READERS:
            raise TrainerError(f"{path}: {name} has .npy format {version}; re-download it")
        shape, fortran_order, dtype = _NPY_HEADER_READERS[version](member)
        if dtype.kind not in "iu" or any(dim < 0 for dim in shape):
            raise TrainerError(f"{path}: {name} is {dtype} {shape}, expected integers")
        size = math.prod(shape) * dtype.itemsize
        if size > MAX_RECORDS * MNIST.height * MNIST.width:
            raise TrainerError(
                f"{path}: {name} claims {shape}, more than MNIST could hold; the file is corrupt"
            )
        raw = _read_exactly(member, path, size)
    return raw.view(dtype).reshape(shape, order="F" if fortran_order else "C")


_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def _check_labels(path, labels, count):
    if labels.shape != (count,):
        raise TrainerError(
            f"{path}: {labels.shape[0] if labels.ndim else 0} labels for "
            f"{count} images; the files do not belong together"
        )
    bad = labels[(labels < 0) | (labels > 9)]
    if bad.size:
        raise TrainerError(f"{path}: label {int(bad[0])} is not a digit 0-9")
    return labels.astype(np.uint8)


def load(dataset: str, data_dir=None, split: str = "train"):
    """One split of a named data set.

    Args:
      dataset: a key of image_spec.DATASET_SPECS ("mnist" or "fashion-mnist").
      data_dir: folder with the set's IDX files (or, for MNIST, mnist.npz); None uses
        the Keras cache, downloading the files there if they are missing.
      split: "train" or "test".

    Returns:
      (images, labels): uint8 (N, H, W) of the set's spec and uint8 (N,) classes.

    Raises:
      TrainerError: the files are missing, corrupt, cannot be downloaded, or hold the
        other data set.
    """
    if dataset not in DATASET_SPECS:
        raise ValueError(f"dataset must be one of {', '.join(DATASET_SPECS)}, got {dataset!r}")
    if dataset == "mnist":
        images, labels = load_mnist(data_dir, split)
    else:
        images, labels = load_mnist(data_dir or _keras_fashion_dir(), split)
    found = identify(labels, split)
    if found is not None and found != dataset:
        where = f"--data-dir {data_dir!r}" if data_dir else "the Keras cache"
        raise TrainerError(
            f"{where} holds {found}'s {split} files, not {dataset}'s (their label counts "
            f"are {found}'s); pass --dataset {found}, or point --data-dir at {dataset}'s "
            "files"
        )
    return images, labels


def load_training(config):
    """The training images of config's data set, their labels, and their image spec.

    Returns:
      (images uint8 (N, H, W[, C]), possibly memory-mapped; labels (N,) or None for an
      unlabelled folder; the ImageSpec they have).

    Raises:
      TrainerError: the data cannot be read (trainer.folders and `load` say why).
    """
    if config.dataset != "folder":
        images, labels = load(config.dataset, config.data_dir, "train")
        return images, labels, DATASET_SPECS[config.dataset]
    if not config.data_dir:
        raise TrainerError("--dataset folder reads the images in --data-dir: pass --data-dir DIR")
    from trainer import folders  # here: the IDX sets need none of it
    from trainer.train_config import DEFAULT_IMAGE_SIZE

    folder = folders.load(config.data_dir, config.image_size or DEFAULT_IMAGE_SIZE, config.channels)
    return folder.images, folder.labels, folder.spec


def identify(labels, split: str):
    """The named set whose published `split` has exactly these label counts, or None
    (a subset, or another set in the same format)."""
    counts = tuple(int(n) for n in np.bincount(np.asarray(labels), minlength=10))
    return next(
        (name for (name, part), known in LABEL_COUNTS.items() if part == split and known == counts),
        None,
    )


def load_mnist(data_dir=None, split="train"):
    """Loads one MNIST split.

    Args:
      data_dir: folder with the IDX files or mnist.npz; None uses the Keras cache,
        downloading mnist.npz there if it is missing.
      split: "train" (60,000 images) or "test" (10,000).

    Returns:
      (images, labels): uint8 (N, H, W) of image_spec.MNIST in [0, 255] and uint8 (N,)
      in [0, 9].

    Raises:
      TrainerError: the files are missing, corrupt, or cannot be downloaded.
    """
    if split not in _STEMS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if data_dir is None:
        return read_npz(_keras_mnist_npz(), split)
    if not tf.io.gfile.isdir(data_dir):
        raise TrainerError(
            f"--data-dir {data_dir!r} is not a folder; point it at the "
            "folder holding the MNIST IDX files or mnist.npz"
        )
    image_stem, label_stem = _STEMS[split]
    image_path = _find_idx(data_dir, image_stem, "idx3")
    label_path = _find_idx(data_dir, label_stem, "idx1")
    if image_path and label_path:
        images = read_idx(image_path)
        return images, _check_labels(label_path, read_idx(label_path), len(images))
    if image_path:
        raise TrainerError(
            f"{image_path} has no labels file beside it: put {label_stem}-idx1-ubyte.gz "
            f"(the labels of the same {split} images) in {data_dir!r}"
        )
    npz_path = os.path.join(data_dir, "mnist.npz")
    if tf.io.gfile.exists(npz_path):
        return read_npz(npz_path, split)
    raise TrainerError(
        f"no MNIST {split} data in {data_dir!r}: put {image_stem}-idx3-ubyte.gz and "
        f"{label_stem}-idx1-ubyte.gz (or mnist.npz) there"
    )


def _keras_mnist_npz():
    # Keras's own cache: always on this machine's disk, so plain os calls.
    cached = os.path.expanduser(KERAS_CACHE)
    if os.path.exists(cached):
        return cached
    logging.info("downloading MNIST to %s", cached)
    try:
        return tf.keras.utils.get_file(
            "mnist.npz", origin=KERAS_MNIST_URL, file_hash=KERAS_MNIST_SHA256
        )
    except Exception as err:  # get_file raises bare Exception on network failures.
        raise TrainerError(
            f"could not download MNIST ({err}); offline, put mnist.npz in "
            f"{os.path.dirname(cached)}/ or pass --data-dir DIR with the four MNIST IDX "
            "files (train-images-idx3-ubyte.gz, ...)"
        ) from err


def _keras_fashion_dir():
    # Keras's own cache, as keras.datasets.fashion_mnist keeps it: four IDX files.
    folder = os.path.expanduser(KERAS_FASHION_CACHE)
    if all(os.path.exists(os.path.join(folder, name)) for name in _FASHION_FILES):
        return folder
    logging.info("downloading Fashion-MNIST to %s", folder)
    try:
        for name in _FASHION_FILES:
            tf.keras.utils.get_file(
                name, origin=KERAS_FASHION_URL + name, cache_subdir="datasets/fashion-mnist"
            )
    except Exception as err:  # get_file raises bare Exception on network failures.
        raise TrainerError(
            f"could not download Fashion-MNIST ({err}); offline, put its four IDX files "
            f"in {folder}/ or pass --data-dir DIR with them"
        ) from err
    return folder


def epoch_batches(
    images,
    batch_size: int,
    seed: int,
    epoch: int,
    start_batch: int = 0,
    labels=None,
    mirror: bool = False,
):
    """One epoch of shuffled training batches, resumable at any batch.

    The order is a permutation seeded by (seed, epoch), so a resumed run sees exactly
    the batches the uninterrupted run would have seen. Batches are cut from the images
    in memory as they are asked for (a 64-image gather takes microseconds against a
    train step's tens of milliseconds): a tf.data pipeline here stalled for about 30
    seconds at some epoch ends while training ran, for no gain in speed.

    Args:
      images: uint8 (N, H, W[, C]) array, in memory or memory-mapped.
      batch_size: images per batch; the last partial batch is dropped.
      seed: the run's seed.
      epoch: index of this epoch, 0-based.
      start_batch: batches of this epoch already trained on.
      labels: uint8 (N,) digits of `images`, for a conditional run; None without.
      mirror: the epoch also holds every image flipped left to right (2N images).

    Yields:
      (images, digits): float32 tf.Tensor (batch_size, H, W, C) in [-1, 1], and the
      int32 (batch_size,) digits of the same images, or None without `labels`.
    """
    count = len(images)
    order = np.random.default_rng([seed, epoch]).permutation(count * (2 if mirror else 1))
    for batch in range(start_batch, len(order) // batch_size):
        rows = order[batch * batch_size : (batch + 1) * batch_size]  # >= count: mirrored
        pixels = image_utils.to_model_range(images[rows % count])
        pixels[rows >= count] = pixels[rows >= count, :, ::-1]
        yield (
            tf.constant(pixels),
            None if labels is None else tf.constant(labels[rows % count], tf.int32),
        )


def steps_per_epoch(num_images: int, batch_size: int) -> int:
    """Full batches in one epoch; raises TrainerError when there is not even one."""
    if num_images < batch_size:
        raise TrainerError(
            f"{num_images} training images is less than one batch of "
            f"{batch_size}; lower --batch-size"
        )
    return num_images // batch_size


def pair_distances(
    images, labels=None, pairs: int = 2000, seed: int = 0, num_classes: int = 10
) -> np.ndarray:
    """How much two real images differ: the mean absolute pixel difference, in the
    networks' [-1, 1] range, over `pairs` random pairs.

    Args:
      images: uint8 (N, H, W[, C]) in [0, 255].
      labels: uint8 (N,) classes of images, or None.
      pairs: pairs drawn (per class with labels).
      seed: the draw's seed, so a resumed run measures what the fresh one did.
      num_classes: how many classes the labels index.

    Returns:
      float32 (num_classes,), pairs of the same class, indexed by class, with labels; else
      float32 (1,), pairs of any two images. Infinite where there are fewer than two
      images to pair.
    """
    rng = np.random.default_rng(seed)
    groups = (
        [np.flatnonzero(labels == digit) for digit in range(num_classes)]
        if labels is not None
        else [np.arange(len(images))]
    )
    distances = []
    for rows in groups:
        if len(rows) < 2:
            distances.append(np.inf)
            continue
        first, second = rng.choice(rows, pairs), rng.choice(rows, pairs)
        difference = np.abs(images[first].astype(np.float32) - images[second])
        distances.append(difference.mean() / 127.5)  # [0, 255] steps -> [-1, 1] range
    return np.asarray(distances, np.float32)
