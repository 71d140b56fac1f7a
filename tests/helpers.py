"""What several test modules share that is not a fixture: paths, markers, config edits,
the config a command line resolves to and an IDX encoder."""

import dataclasses
import os

import numpy as np
import pytest

from trainer import flags
from trainer.train_config import TrainConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST_DIR = os.path.join(REPO, "..", "shared", "mnist")
HAVE_MNIST = os.path.exists(os.path.join(MNIST_DIR, "train-images-idx3-ubyte.gz"))
needs_mnist = pytest.mark.skipif(
    not HAVE_MNIST, reason=f"MNIST files not found at {MNIST_DIR} (see shared/README.md)"
)
FASHION_DIR = os.path.join(REPO, "..", "shared", "fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")),
    reason=f"Fashion-MNIST files not found at {FASHION_DIR} (see shared/README.md)",
)
# System tests (kills, signals, a full disk, full-size benchmarks, the shipped model on
# 10,000 samples) and whole train-resume-sample runs, seconds to minutes each on a 2-core
# AVX2 CPU: `python -m pytest -q -m "not slow"` leaves them out while you work.
slow = pytest.mark.slow


def _bfloat16_kernels_fail() -> bool:
    from trainer import hardware

    return hardware.bfloat16_kernels_fail(hardware.detect(os.environ))


# Tests that compute in bfloat16 on this machine, whatever hardware they fake.
needs_bfloat16_kernels = pytest.mark.skipif(
    _bfloat16_kernels_fail(),
    reason="ONEDNN_MAX_CPU_ISA caps oneDNN below this CPU's "
    "bfloat16 instructions, where TensorFlow's bfloat16 kernels fail",
)


def tiny_config(folder) -> TrainConfig:
    """A config small enough to train a few steps in about a second, writing into
    `folder` (a pathlib.Path). The R1 penalty comes every step (r1_interval=1), so a run
    traces one step function instead of two, which cuts the quick run by a quarter. Tests
    of the lazy cadence set r1_interval themselves."""
    return TrainConfig(
        checkpoint_dir=str(folder / "ckpt"),
        log_dir=str(folder / "logs"),
        sample_dir=str(folder / "samples"),
        batch_size=16,
        latent_dim=8,
        generator_width=4,
        discriminator_width=4,
        train_steps=6,
        log_freq=2,
        checkpoint_freq=4,
        seed=1,
        eval_samples=0,
        lr_decay_epochs=0,
        generator_depth=0,
        discriminator_depth=0,
        r1_interval=1,
    )


# tiny_config's nets and R1 cadence as trainer.task flags, for tests that train
# through the command line.
TINY_FLAGS = (
    "--eval-samples",
    "0",
    "--batch-size",
    "16",
    "--latent-dim",
    "8",
    "--generator-width",
    "4",
    "--discriminator-width",
    "4",
    "--r1-interval",
    "1",
)


def blob_images() -> np.ndarray:
    """Synthetic uint8 (160, 28, 28) 'digits': a bright square on black."""
    rng = np.random.default_rng(0)
    images = np.zeros((160, 28, 28), dtype=np.uint8)
    for image, (top, left) in zip(images, rng.integers(4, 16, size=(160, 2))):
        image[top : top + 8, left : left + 8] = 255
    return images


def flat_config(config) -> dict:
    """The flat config.json object earlier versions wrote: every field at the top level
    (folders included, as before they were left out), and no image spec (older than it).
    Tests delete fields from it to stand for files written before those fields existed."""
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    del values["image"]
    return values


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


def fill_disk_at(monkeypatch, suffix):
    """Makes tf.io.gfile.GFile fail on paths ending in `suffix` as TensorFlow's local
    file system reports a full disk (ENOSPC); other paths open as usual."""
    import tensorflow as tf

    real_gfile = tf.io.gfile.GFile

    def full_disk(path, mode="r"):
        if str(path).endswith(suffix):
            raise tf.errors.ResourceExhaustedError(None, None, f"{path}; No space left on device")
        return real_gfile(path, mode)

    monkeypatch.setattr(tf.io.gfile, "GFile", full_disk)


def resolved(*argv) -> TrainConfig:
    """The config `python -m trainer.task` resolves from these command-line words."""
    return flags.resolve(flags.build_parser().parse_args(list(argv)))
