"""What several test modules share that is not a fixture: paths, markers, config edits
and an IDX encoder."""

import dataclasses
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_DIR = os.path.join(REPO, "..", "shared", "mnist")
HAVE_MNIST = os.path.exists(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz"))
needs_mnist = pytest.mark.skipif(
    not HAVE_MNIST, reason=f"MNIST files not found at {MNIST_DIR} (see shared/README.md)")
# System tests (kills, signals, a full disk, full-size benchmarks, the shipped model on
# 10,000 samples) and whole train-resume-sample runs, seconds to minutes each on a 2-core
# AVX2 CPU: `python -m pytest -q -m "not slow"` leaves them out while you work.
slow = pytest.mark.slow


def replace(config, **changes):
    return dataclasses.replace(config, **changes)


def idx_bytes(array, magic=None):
    """IDX encoding of a uint8 array: magic, big-endian dims, raw bytes."""
    magic = magic if magic is not None else 0x0800 + array.ndim
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return magic.to_bytes(4, "big") + dims + array.tobytes()


def assert_usage_error(main, argv, message, capsys):
    """`main(argv)` exits 2 (argparse's usage error) with `message` on stderr and no
    traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
