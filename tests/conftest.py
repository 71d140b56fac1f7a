"""Shared fixtures (tiny configs and data, so every test runs in seconds) and the slow
marker; plain helpers are in helpers.py."""

import helpers
import numpy as np
import pytest
from helpers import HAVE_MNIST, MNIST_DIR, idx_bytes

from trainer import data


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: a system test or a whole training run; deselect with -m 'not slow'",
    )


# The longest tests, longest first, with their seconds on a 2-core AVX2 EPYC with the
# rest of the suite beside them. Collected first, they start at once on pytest-xdist's
# workers (which take tests in collection order), so no worker is left running one of
# them alone at the end while the other idles.
LONGEST = (
    "test_kill.py::test_sigkill_at_random_moments_loses_nothing_saved",  # 130-210 s
    "test_bench.py::test_benchmark_prints_a_table_and_every_figure_as_json",  # 159 s
    "test_bench.py::test_time_to_quality_reads_the_runs_own_probe_and_keeps_the_run",
    "test_distribute.py::test_two_workers_stopped_by_sigterm_and_restarted_end_as_one_"
    "process_would",  # 108 s and 22 s of setup
    "test_shipped_model.py::test_shipped_model_quality_on_10000_samples",
    "test_shipped_model.py::test_conditional_model_draws_the_digit_asked_for_on_10000_samples",
    "test_export.py::test_the_exports_digits_score_as_the_samplers_do",  # 72 s
    "test_distribute.py::test_two_mirrored_replicas_train_as_one_device",
)


def pytest_collection_modifyitems(items):
    """Runs LONGEST first, in its order; every other test keeps its place."""

    def rank(item):
        name = item.nodeid.split("tests/")[-1]
        return next((i for i, long in enumerate(LONGEST) if name.startswith(long)), len(LONGEST))

    items.sort(key=rank)


@pytest.fixture(scope="session")
def mnist_subset():
    """The first 640 training images of ../shared/mnist, uint8 (640, 28, 28)."""
    if not HAVE_MNIST:
        pytest.skip(f"MNIST files not found at {MNIST_DIR} (see shared/README.md)")
    images, _ = data.load_mnist(MNIST_DIR, "train")
    return images[:640]


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory):
    """A tiny run's checkpoint folder, trained once for each test module that asks (its
    tests only read it): test_sample, test_generation and test_loaders."""
    from trainer import train

    # The DCGAN paper's generator rate: at the default 1e-3 the 4-channel generator can
    # saturate within its 6 steps and draw one picture for every z.
    config = helpers.replace(
        helpers.tiny_config(tmp_path_factory.mktemp("trained")), learning_rate=2e-4
    )
    train.run(config, images=helpers.blob_images())
    return config


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
