"""tf.distribute: the strategy picked, parity of replicas with one device, and two
localhost workers run from the command line as a user runs them."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO, slow

from trainer import distribute, train_state
from trainer.errors import TrainerError

TWO_WORKERS = json.dumps(
    {
        "cluster": {"worker": ["localhost:1", "localhost:2"]},
        "task": {"type": "worker", "index": 0},
    }
)


@pytest.mark.parametrize(
    "name, tf_config, gpus, picked",
    [
        ("auto", "", 0, "one"),
        ("auto", "", 1, "one"),
        ("auto", "", 4, "mirrored"),
        ("auto", TWO_WORKERS, 0, "multi-worker"),
        ("auto", TWO_WORKERS, 8, "multi-worker"),
        (
            "auto",
            json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {}}),
            0,
            "one",
        ),
        ("one", TWO_WORKERS, 4, "one"),
        ("mirrored", "", 0, "mirrored"),
        ("multi-worker", TWO_WORKERS, 0, "multi-worker"),
    ],
)
def test_pick_follows_tf_config_then_gpus(name, tf_config, gpus, picked):
    assert distribute.pick(name, tf_config, gpus) == picked


def test_cluster_size_counts_chief_and_workers_not_parameter_servers():
    spec = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"], "ps": ["d:1"]}}
    assert distribute.cluster_size(json.dumps(spec)) == 3
    assert distribute.cluster_size("") == 0


def test_bad_tf_config_and_multi_worker_without_it_are_one_clear_error():
    with pytest.raises(TrainerError, match="TF_CONFIG is not the JSON"):
        distribute.pick("auto", "{worker: [", 0)
    with pytest.raises(TrainerError, match="--strategy multi-worker needs TF_CONFIG"):
        distribute.pick("multi-worker", "", 0)


def test_the_global_batch_must_split_evenly():
    assert distribute.check_batch(64, 2) == 32
    with pytest.raises(
        TrainerError,
        match="--batch-size 63 does not split evenly over 2 replicas; pass a multiple of 2",
    ):
        distribute.check_batch(63, 2)


def _fake_strategy(cluster, task_type, task_id):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id
    )
    return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize(
    "cluster, task_type, task_id, chief",
    [
        ({"worker": ["a:1", "b:1"]}, "worker", 0, True),
        ({"worker": ["a:1", "b:1"]}, "worker", 1, False),
        ({"chief": ["a:1"], "worker": ["b:1"]}, "chief", 0, True),
        ({"chief": ["a:1"], "worker": ["b:1"]}, "worker", 0, False),
    ],
)
def test_the_chief_is_task_chief_or_else_worker_0(cluster, task_type, task_id, chief):
    strategy = _fake_strategy(cluster, task_type, task_id)
    assert distribute.is_chief(strategy) is chief
    assert distribute.is_multi_worker(strategy)


def test_one_device_is_its_own_chief():
    strategy = tf.distribute.get_strategy()
    assert distribute.is_chief(strategy) and not distribute.is_multi_worker(strategy)
    assert distribute.describe(strategy) == "default strategy, 1 replica"


def test_worker_folders_are_real_for_the_chief_and_removed_for_others(tmp_path):
    with distribute.WorkerFolders(chief=True) as folders:
        assert folders.path(str(tmp_path / "ckpt"), "checkpoints") == str(tmp_path / "ckpt")
    with distribute.WorkerFolders(chief=False) as folders:
        own = folders.path(str(tmp_path / "ckpt"), "checkpoints")
        assert not own.startswith(str(tmp_path))
        os.makedirs(own)
    assert not os.path.exists(own)


def test_the_state_has_optimizer_slots_and_synchronized_batch_norm_before_any_step(
    tiny_config,
):
    # Adam creating its slots inside the first strategy.run fails under
    # MirroredStrategy (keras-team/keras#23085): they must exist before it.
    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        state = train_state.build_state(tiny_config)
    for optimizer, net in (
        (state.g_optimizer, state.generator),
        (state.d_optimizer, state.discriminator),
    ):
        slots = len(optimizer.variables) - len(net.trainable_variables) * 2
        assert slots >= 1 and optimizer.built  # iterations (and lr) beside m and v
        norms = [
            layer for layer in net.layers if isinstance(layer, tf.keras.layers.BatchNormalization)
        ]
        assert norms and all(layer.synchronized for layer in norms)
    assert isinstance(state.step, tf.distribute.DistributedValues)


@slow  # a child process splits the CPU into two devices: about 30 s
@pytest.mark.parametrize("kind", ["unconditional", "--conditional"])
def test_two_mirrored_replicas_train_as_one_device(tmp_path, kind):
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tests", "replica_parity.py"),
            str(tmp_path),
            kind,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")])),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["described"] == {
        "one": "default strategy, 1 replica",
        "mirrored": "MirroredStrategy, 2 replicas",
    }
    assert result["steps"] == {"one": 20, "mirrored": 20} and result["variables"] > 60
    assert result["errors"] == {
        "xla": "--xla compiles the one-device step; drop it to train on 2 replicas",
        "odd batch": "--batch-size 15 does not split evenly over 2 replicas; pass a multiple of 2",
    }
    # Measured 4.5e-7 over weights and Adam moments. With the one device computing
    # batch norm's variance in two passes, as unsynchronized batch norm does (the same
    # figures, other rounding), GAN training amplified the difference to 1.6e-3.
    # Conditional (Adam's epsilon 1e-3, see replica_parity.py): 4.8e-8.
    assert result["max_difference"] < 1e-5


# Two localhost workers started from the command line, as docs/distributed.md's
# 'Several workers' shows.

# Compared at 20 steps, as the parity test is: by step 24 one Adam update of these
# 4-channel nets turns a rounding difference in a near-zero gradient into 4e-5 (seen
# between one device and MirroredStrategy alike), and it grows from there. float32:
# under --precision auto a CPU with AVX512-BF16 or AMX computes in bfloat16, whose
# rounding of the two workers' half batches against one whole batch moved a batch-norm
# moving mean by 2.5e-4 in 20 steps; what is tested is the cluster, not that rounding.
STEPS = 20
TINY = (
    "--train-steps",
    str(STEPS),
    "--batch-size",
    "16",
    "--latent-dim",
    "8",
    "--generator-width",
    "4",
    "--discriminator-width",
    "4",
    "--eval-samples",
    "0",
    "--seed",
    "1",
    "--log-freq",
    "2",
    "--checkpoint-freq",
    "8",
    "--lr-decay-epochs",
    "0",
    "--precision",
    "float32",
)


def _cli(folder, data_dir, *extra):
    return [
        sys.executable,
        "-m",
        "trainer.task",
        "--data-dir",
        data_dir,
        "--checkpoint-dir",
        str(folder / "ckpt"),
        "--log-dir",
        str(folder / "logs"),
        *TINY,
        *extra,
    ]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("localhost", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start_workers(folder, data_dir, *extra):
    """Worker 0 (the chief) and worker 1 of a fresh cluster on free localhost ports;
    each one's stderr goes to folder/worker-N.log."""
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    (folder / "tmp").mkdir(exist_ok=True)
    workers = []
    for index in range(2):
        env = dict(
            os.environ,
            PYTHONPATH=REPO,
            TMPDIR=str(folder / "tmp"),
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )
        log = open(folder / f"worker-{index}.log", "a")
        workers.append(
            subprocess.Popen(
                _cli(folder, data_dir, *extra), cwd=folder, env=env, stderr=log, stdout=log
            )
        )
        log.close()
    return workers


def _wait(workers, timeout=600):
    return [worker.wait(timeout=timeout) for worker in workers]


def _log(folder, index):
    return (folder / f"worker-{index}.log").read_text()


def _variables(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        # Every float variable but the wall-clock time spent, which no two runs share.
        if reader.get_variable_to_dtype_map()[name].is_floating and not name.startswith("elapsed")
    }


def _assert_same_training(prefix, reference):
    """Every float variable within 1e-4: weights absolutely (measured: 7e-7), Adam's
    moments relative to their size, up to 90 here (measured: 1.6e-5 relative)."""
    ours, theirs = _variables(prefix), _variables(reference)
    assert ours.keys() == theirs.keys() and len(ours) > 60
    for name in ours:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-4, atol=1e-4, err_msg=name)


def _listing(folder):
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    )


@pytest.fixture(scope="module")
def cluster_data(tmp_path_factory):
    """The blob images as an IDX --data-dir, and a one-process run of TINY in it."""
    from helpers import blob_images, idx_bytes

    root = tmp_path_factory.mktemp("one-process")
    data_dir = root / "mnist"
    data_dir.mkdir()
    images = blob_images()
    (data_dir / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    labels = idx_bytes(np.zeros(len(images), np.uint8))
    (data_dir / "train-labels-idx1-ubyte").write_bytes(labels)
    # A test split too, so the chief's quality probe runs when a test asks for it.
    (data_dir / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (data_dir / "t10k-labels-idx1-ubyte").write_bytes(labels)
    out = subprocess.run(
        _cli(root, str(data_dir)),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, PYTHONPATH=REPO),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return str(data_dir), root


def _without_steps(listing):
    """A folder listing with step numbers and event-file suffixes blanked: which kinds
    of file there are, and how many."""
    return sorted(
        re.sub(r"(events\.out\.tfevents)\..*", r"\1", re.sub(r"\d+", "N", name)) for name in listing
    )


@slow  # a one-process reference and two clusters of two TensorFlow processes: ~2.5 min
def test_two_workers_stopped_by_sigterm_and_restarted_end_as_one_process_would(
    tmp_path, cluster_data
):
    data_dir, reference = cluster_data
    # --eval-samples: the chief alone runs the quality probe at each epoch end and at
    # the end, while the worker waits at distribute.barrier: a worker that exited during
    # a 12 s probe was logged by the coordination service as a crash.
    workers = _start_workers(tmp_path, data_dir, "--eval-samples", "10")
    deadline = time.monotonic() + 600
    while not re.search(r"step ([4-9]|\d\d)/", _log(tmp_path, 0)):
        assert time.monotonic() < deadline and workers[0].poll() is None, _log(tmp_path, 0)
        time.sleep(0.05)
    workers[1].send_signal(signal.SIGTERM)  # the worker that is not the chief
    codes = _wait(workers)
    chief, worker = _log(tmp_path, 0), _log(tmp_path, 1)
    assert codes == [distribute.RESTART_EXIT_CODE] * 2, chief[-2000:] + worker[-2000:]
    assert "strategy: MultiWorkerMirroredStrategy, 2 replicas (worker 0 of 2, chief)" in chief
    assert "strategy: MultiWorkerMirroredStrategy, 2 replicas (worker 1 of 2)" in worker
    stopped = int(re.search(r"stopped by a signal to another worker at step (\d+)", chief).group(1))
    assert f"stopped by SIGTERM at step {stopped};" in worker
    assert 4 <= stopped < STEPS
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith(f"ckpt-{stopped}")

    assert _wait(
        _start_workers(tmp_path, data_dir, "--continue-train", "True", "--eval-samples", "10")
    ) == [0, 0]
    chief, worker = _log(tmp_path, 0), _log(tmp_path, 1)
    assert f"resumed from step {stopped} " in chief
    assert f"step {STEPS}/{STEPS}" in chief and "step 2/" not in worker  # chief logs only
    assert f"step {STEPS} quality:" in chief and "crashed" not in chief + worker
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith(f"ckpt-{STEPS}")
    # The worker wrote nothing into the real folders: they hold the kinds of file one
    # process leaves, one event file per chief run, and its own folders are gone.
    for name in ("ckpt", "logs"):
        assert set(_without_steps(_listing(tmp_path / name))) == set(
            _without_steps(_listing(reference / name))
        )
    assert _without_steps(_listing(tmp_path / "logs")).count("events.out.tfevents") == 2
    assert os.listdir(tmp_path / "tmp") == []
    # Nothing lost: the interrupted and resumed run ends where the one-process run does.
    _assert_same_training(
        str(tmp_path / "ckpt" / f"ckpt-{STEPS}"), str(reference / "ckpt" / f"ckpt-{STEPS}")
    )
