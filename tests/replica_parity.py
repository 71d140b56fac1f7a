"""Child process of test_distribute's parity test: TensorFlow's logical devices can only
be split before it starts, so this runs apart from the test session.

    python tests/replica_parity.py OUT_DIR [--conditional]

Trains the tiny config 20 steps under the default strategy and under MirroredStrategy
over two logical CPU devices, from the same seed and images (with --conditional, and
their digits: each replica takes its rows of the batch's digits as of its images), and
prints one JSON line: each strategy's description, the steps trained, the largest
difference of any float variable, and the errors two replicas give for --xla and an
odd batch. One kind of run a process: a second MirroredStrategy training in the same
process can meet the first one's collective ops.

The conditional runs give Adam an epsilon of 1e-3 instead of 1e-7: there, Adam's
division by the root of a near-zero second moment turned the replicas' rounding
(1e-7 after 5 steps) into 2e-5 at step 6 and 1e-2 at step 20 (with R1; without it the
runs agreed to 1e-7 over 12 steps); at 1e-3 they agree to 5e-8 over 20 steps, and a
digit sent to the wrong replica would still differ by far more.
"""

import dataclasses
import functools
import json
import pathlib
import sys

import numpy as np
import tensorflow as tf

CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

from helpers import blob_images, tiny_config  # noqa: E402 (after the device split)

from trainer import distribute, train  # noqa: E402
from trainer.errors import TrainerError  # noqa: E402


def weights(prefix):
    """Every float variable of a checkpoint, by name: the networks, their average and
    the optimizers' moments (a network's weights are filed under its optimizer)."""
    reader = tf.train.load_checkpoint(prefix)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        # Every float variable but the wall-clock time spent, which no two runs share.
        if reader.get_variable_to_dtype_map()[name].is_floating and not name.startswith("elapsed")
    }


def main(out_dir, conditional=False):
    root = pathlib.Path(out_dir)
    if conditional:
        adam = tf.keras.optimizers.Adam
        tf.keras.optimizers.Adam = functools.partial(adam, epsilon=1e-3)
    # R1 every 4 steps: the penalty's gradient through synchronized batch norm is tested.
    config = dataclasses.replace(
        tiny_config(root),
        train_steps=20,
        r1_gamma=1.0,
        r1_interval=4,
        checkpoint_freq=100,
        log_freq=10,
        conditional=conditional,
    )
    images = blob_images()
    digits = (np.arange(len(images)) % 10).astype(np.uint8) if conditional else None
    found, described, steps = {}, {}, {}
    for kind in ("one", "mirrored"):
        strategy = distribute.create(kind)
        described[kind] = distribute.describe(strategy)
        run = dataclasses.replace(
            config,
            checkpoint_dir=str(root / kind / "ckpt"),
            log_dir=str(root / kind / "logs"),
        )
        result = train.run(run, images=images, strategy=strategy, labels=digits)
        found[kind], steps[kind] = weights(result["checkpoint"]), result["step"]
    errors = {}  # what two replicas refuse, before anything is written
    for name, changes in (("xla", {"xla": True}), ("odd batch", {"batch_size": 15})):
        try:
            train.run(
                dataclasses.replace(config, checkpoint_dir=str(root / name), **changes),
                images=images,
                strategy=strategy,
                labels=digits,
            )
        except TrainerError as err:
            errors[name] = str(err)
    first = found["one"]
    print(
        json.dumps(
            {
                "described": described,
                "steps": steps,
                "variables": len(first),
                "errors": errors,
                "max_difference": max(
                    float(np.abs(first[k] - found["mirrored"][k]).max()) for k in first
                ),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], conditional="--conditional" in sys.argv[2:])
