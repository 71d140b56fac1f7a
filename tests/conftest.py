"""Shared fixtures (tiny configs and data, so every test runs in seconds) and the slow
marker; plain helpers are in helpers.py."""

import numpy as np
import pytest

from helpers import HAVE_MNIST, MNIST_DIR, idx_bytes
from trainer import data
from trainer.train_config import TrainConfig

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
    """A config small enough to train a few steps in about a second."""
    return TrainConfig(
        checkpoint_dir=str(tmp_path / "ckpt"), log_dir=str(tmp_path / "logs"),
        sample_dir=str(tmp_path / "samples"), batch_size=16, latent_dim=8,
        generator_width=4, discriminator_width=4, train_steps=6, log_freq=2,
        checkpoint_freq=4, seed=1, eval_samples=0, lr_decay_epochs=0, generator_depth=0,
        discriminator_depth=0)


@pytest.fixture
def blob_images():
    """Synthetic uint8 (160, 28, 28) 'digits': a bright square on black, no files needed."""
    rng = np.random.default_rng(0)
    images = np.zeros((160, 28, 28), dtype=np.uint8)
    for image, (top, left) in zip(images, rng.integers(4, 16, size=(160, 2))):
        image[top:top + 8, left:left + 8] = 255
    return images


@pytest.fixture
def idx_dir(tmp_path, blob_images):
    """A --data-dir holding the blob images as raw IDX training files."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(idx_bytes(blob_images))
    labels = np.zeros(len(blob_images), np.uint8)
    (folder / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return str(folder)
