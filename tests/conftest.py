"""Shared fixtures (tiny configs and data, so every test runs in seconds) and the slow
marker; plain helpers are in helpers.py."""

import numpy as np
import pytest

import helpers
from helpers import HAVE_MNIST, MNIST_DIR, idx_bytes
from trainer import data

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a system test or a whole training run; "
                            "deselect with -m 'not slow'")


@pytest.fixture(scope="session")
def mnist_subset():
    """The first 640 training images of ../shared/mnist, uint8 (640, 28, 28)."""
    if not HAVE_MNIST:
        pytest.skip(f"MNIST files not found at {MNIST_DIR} (see shared/README.md)")
    images, _ = data.load_mnist(MNIST_DIR, "train")
    return images[:640]


@pytest.fixture
def tiny_config(tmp_path):
    """helpers.tiny_config in this test's own folder."""
    return helpers.tiny_config(tmp_path)


@pytest.fixture
def blob_images():
    """helpers.blob_images: 160 synthetic 'digits', no files needed."""
    return helpers.blob_images()


@pytest.fixture
def idx_dir(tmp_path, blob_images):
    """A --data-dir holding the blob images as raw IDX training files."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(blob_images))
    labels = np.zeros(len(blob_images), np.uint8)
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return str(folder)
