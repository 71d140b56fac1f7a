"""Hostile files: every input to read_idx and read_npz gives a valid array or a
TrainerError naming the file; never another exception, a hang or a huge allocation."""

import gzip
import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from helpers import idx_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer import data
from trainer.errors import TrainerError

# deadline None: the first example pays for numpy/zipfile warm-up. derandomize: the same
# examples on every run, so a failure reproduces; database None: no .hypothesis/ folder.
FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None)
MB = 1 << 20

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (3, 28, 28), dtype=np.uint8)
LABELS = RNG.integers(0, 10, 3, dtype=np.uint8)
VALID_IDX = [idx_bytes(IMAGES), idx_bytes(LABELS)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One folder per module: hypothesis reruns a test many times within one fixture."""
    return tmp_path_factory.mktemp("hostile")


def write(folder, name, payload, gz=False):
    path = folder / name
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return str(path)


def read_idx_checked(path):
    """read_idx's result, checked; None when it raised a TrainerError naming `path`."""
    try:
        array = data.read_idx(path)
    except TrainerError as err:
        assert path in str(err)
        return None
    assert array.dtype == np.uint8 and array.shape[0] > 0
    assert array.shape[1:] in ((28, 28), ()), array.shape
    return array


def read_npz_checked(path):
    """read_npz's result, checked; None when it raised a TrainerError naming `path`."""
    try:
        images, labels = data.read_npz(path, "train")
    except TrainerError as err:
        assert path in str(err)
        return None
    assert images.dtype == np.uint8 and images.ndim == 3 and images.shape[1:] == (28, 28)
    assert labels.dtype == np.uint8 and labels.shape == (len(images),)
    assert labels.size == 0 or labels.max() <= 9
    return images, labels


@st.composite
def mutated(draw, valid):
    """`valid` with bytes overwritten, cut, appended, or a header field set to a huge
    or random value."""
    payload = bytearray(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "append", "header"]))
        if kind == "flip" and payload:
            at = draw(st.integers(0, len(payload) - 1))
            payload[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del payload[draw(st.integers(0, len(payload))) :]
        elif kind == "append":
            payload += draw(st.binary(min_size=1, max_size=64))
        elif kind == "header" and len(payload) >= 8:
            field = draw(st.integers(0, min(3, len(payload) // 4 - 1)))
            edges = st.sampled_from([0, 1, 27, 29, 999_999, 1_000_001, 10**9, 2**32 - 1])
            value = draw(edges | st.integers(0, 2**32 - 1))
            payload[4 * field : 4 * field + 4] = value.to_bytes(4, "big")
    return bytes(payload)


def idx_prefixed_bytes():
    """Random bytes behind a valid magic number, to get past the first check."""
    magics = st.sampled_from([data.IMAGE_MAGIC, data.LABEL_MAGIC])
    return st.builds(
        lambda magic, rest: magic.to_bytes(4, "big") + rest, magics, st.binary(max_size=64)
    )


@FUZZ
@given(payload=st.binary(max_size=2048) | idx_prefixed_bytes(), gz=st.booleans())
def test_read_idx_survives_arbitrary_bytes(folder, payload, gz):
    read_idx_checked(write(folder, "arbitrary-idx3-ubyte" + (".gz" if gz else ""), payload, gz))


@FUZZ
@given(payload=st.binary(max_size=512))
def test_read_idx_survives_arbitrary_bytes_named_gz(folder, payload):
    read_idx_checked(write(folder, "not-gzip-idx3-ubyte.gz", payload))


@FUZZ
@given(payload=mutated(VALID_IDX), gz=st.booleans())
def test_read_idx_survives_mutated_files(folder, payload, gz):
    path = write(folder, "mutated-idx3-ubyte" + (".gz" if gz else ""), payload, gz)
    array = read_idx_checked(path)
    if array is not None:  # what it accepted must be what the header and bytes say
        assert idx_bytes(array) == payload


@FUZZ
@given(payload=mutated([gzip.compress(VALID_IDX[0], mtime=0)]))
def test_read_idx_survives_mutated_gzip_streams(folder, payload):
    array = read_idx_checked(write(folder, "mutated-stream-idx3-ubyte.gz", payload))
    if array is not None:  # a change gzip's CRC cannot see: a header field, zero padding
        np.testing.assert_array_equal(array, IMAGES)


def test_huge_gz_header_with_little_data_fails_fast_without_allocating(folder):
    payload = (
        idx_bytes(IMAGES)[:4]
        + b"".join(n.to_bytes(4, "big") for n in (999_999, 28, 28))
        + bytes(1000)
    )
    path = write(folder, "liar-idx3-ubyte.gz", payload, gz=True)
    tracemalloc.start()
    try:
        with pytest.raises(TrainerError, match="truncated: 1000 of 783999216") as err:
            data.read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path in str(err.value)
    assert peak < 16 * MB, f"{peak / MB:.0f} MB allocated for a 1 kB file"


def test_header_claiming_a_billion_images_is_rejected_before_reading(folder):
    payload = idx_bytes(IMAGES)[:4] + b"".join(n.to_bytes(4, "big") for n in (10**9, 28, 28))
    path = write(folder, "billion-idx3-ubyte", payload)
    with pytest.raises(TrainerError, match="1000000000 records") as err:
        data.read_idx(path)
    assert path in str(err.value)


def npz_bytes(compressed=False, **arrays):
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


VALID_NPZ = [
    npz_bytes(x_train=IMAGES, y_train=LABELS),
    npz_bytes(compressed=True, x_train=IMAGES, y_train=LABELS),
]


@FUZZ
@given(payload=st.binary(max_size=2048) | mutated(VALID_NPZ))
def test_read_npz_survives_arbitrary_and_mutated_bytes(folder, payload):
    result = read_npz_checked(write(folder, "mnist.npz", payload))
    if result is not None:  # a change to zip metadata the reader does not use
        np.testing.assert_array_equal(result[0], IMAGES)


def npy_header(shape, descr="|u1"):
    """A version-1.0 .npy header claiming `shape`, without the data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue()


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


HOSTILE_NPZ = {
    "a .npy, not an .npz": npy_bytes(IMAGES),
    "pickled object arrays": npz_bytes(x_train=np.array([None, 1], dtype=object), y_train=LABELS),
    "members that are not .npy": zip_bytes({"x_train.npy": b"hello", "y_train.npy": b"world"}),
    "a header claiming a billion images": zip_bytes(
        {
            "x_train.npy": npy_header((10**9, 28, 28)) + bytes(100),
            "y_train.npy": npy_header((3,)) + LABELS.tobytes(),
        }
    ),
    "a header claiming 10^15 bytes": zip_bytes(
        {
            "x_train.npy": npy_header((10**5, 10**5, 10**5)),
            "y_train.npy": npy_header((3,)) + LABELS.tobytes(),
        }
    ),
    "float images": npz_bytes(x_train=IMAGES.astype(np.float32), y_train=LABELS),
    "label 10": npz_bytes(x_train=IMAGES, y_train=np.array([0, 10, 1], np.uint8)),
    "label -1": npz_bytes(x_train=IMAGES, y_train=np.array([0, -1, 1], np.int64)),
    "fractional labels": npz_bytes(x_train=IMAGES, y_train=np.array([0, 1.5, 2])),
    "NaN labels": npz_bytes(x_train=IMAGES, y_train=np.array([0, np.nan, 2])),
    "string labels": npz_bytes(x_train=IMAGES, y_train=np.array(["0", "a", "2"])),
    "complex labels": npz_bytes(x_train=IMAGES, y_train=np.array([0, 1j, 2])),
    "labels of another count": npz_bytes(x_train=IMAGES, y_train=LABELS[:2]),
    "a member that is a folder": zip_bytes({"x_train.npy/": b"", "y_train.npy/": b""}),
}


@pytest.mark.parametrize("name", list(HOSTILE_NPZ))
def test_hostile_npz_is_one_error_naming_the_file(folder, name):
    path = write(folder, "mnist.npz", HOSTILE_NPZ[name])
    tracemalloc.start()
    try:
        with pytest.raises(TrainerError) as err:
            data.read_npz(path, "train")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert path in str(err.value)
    assert peak < 16 * MB, f"{peak / MB:.0f} MB allocated for {name}"


def npz_of_npy(members, compression=zipfile.ZIP_STORED):
    """An npz whose members are written by np.lib.format.write_array with its options."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, (array, version) in members.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array, version=version)
    return buffer.getvalue()


VALID_LAYOUTS = {
    "savez_compressed": npz_bytes(compressed=True, x_train=IMAGES, y_train=LABELS),
    "Fortran order, int64 labels": npz_of_npy(
        {
            "x_train": (np.asfortranarray(IMAGES), (1, 0)),
            "y_train": (LABELS.astype(np.int64), (1, 0)),
        }
    ),
    "format 2.0, big-endian labels, lzma": npz_of_npy(
        {"x_train": (IMAGES, (2, 0)), "y_train": (LABELS.astype(">u2"), (2, 0))},
        compression=zipfile.ZIP_LZMA,
    ),
}


@pytest.mark.parametrize("name", list(VALID_LAYOUTS))
def test_valid_npz_layouts_read_as_numpy_wrote_them(folder, name):
    images, labels = data.read_npz(write(folder, "mnist.npz", VALID_LAYOUTS[name]), "train")
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)
    assert labels.dtype == np.uint8
