"""Which tf.distribute strategy a run trains under, and each worker's part in it.

--strategy auto takes MultiWorkerMirroredStrategy when TF_CONFIG names more than one
worker, MirroredStrategy when more than one GPU is visible, and the default strategy
(one device) otherwise. Whatever the strategy, --batch-size is the global batch: each
of N replicas trains on its 1/N share of the same images and noise one device would.

Under several workers the chief (task "chief", or worker 0 when the cluster has none)
writes the real checkpoints and summaries; every other worker writes its copies into a
local temporary folder it removes at the end (the TensorFlow multi-worker tutorial's
pattern), because saving is a step every worker must take together.
"""

import json
import logging
import shutil
import tempfile

import tensorflow as tf

from trainer.errors import TrainerError
from trainer.train_config import STRATEGIES

# The exit code of every worker of a multi-worker run stopped by a signal, after all
# have saved the same step: tf.distribute's PreemptionCheckpointHandler exits with it
# too, so a launcher written for TensorFlow restarts the job on it.
RESTART_EXIT_CODE = 42


def cluster_size(tf_config: str) -> int:
    """Tasks that train (chief and workers) in a TF_CONFIG value; 0 if it is empty.

    Raises:
      TrainerError: TF_CONFIG is not JSON with a "cluster" object.
    """
    if not tf_config:
        return 0
    try:
        cluster = json.loads(tf_config).get("cluster", {})
        return len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    except (ValueError, AttributeError) as err:
        raise TrainerError(
            f"TF_CONFIG is not the JSON TensorFlow expects ({err}): "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": '
            '"worker", "index": 0}}; fix it or unset it'
        ) from err


def pick(name: str, tf_config: str, gpus: int) -> str:
    """The strategy `--strategy name` means here: "one", "mirrored" or "multi-worker".

    Args:
      name: one of STRATEGIES.
      tf_config: the TF_CONFIG environment variable ("" when unset).
      gpus: GPUs visible to TensorFlow.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    workers = cluster_size(tf_config)
    if name == "multi-worker" and workers < 1:
        raise TrainerError(
            "--strategy multi-worker needs TF_CONFIG naming the cluster "
            "and this task (see docs/distributed.md, 'Several workers'); "
            "without it use --strategy auto"
        )
    if name != "auto":
        return name
    if workers > 1:
        return "multi-worker"
    return "mirrored" if gpus > 1 else "one"


def from_environment(name: str, environ) -> tf.distribute.Strategy:
    """The strategy `--strategy name` gives with this environment (its TF_CONFIG) and
    this machine's GPUs, created."""
    gpus = len(tf.config.list_physical_devices("GPU"))
    return create(pick(name, environ.get("TF_CONFIG", ""), gpus))


def create(kind: str) -> tf.distribute.Strategy:
    """The strategy of `kind` (pick's answer). Call before anything else touches TensorFlow's
    devices: MultiWorkerMirroredStrategy must start the cluster first.

    "mirrored" replicates over every GPU, or, with none, over every logical CPU device
    (one unless tf.config.set_logical_device_configuration split it, as tests do).
    """
    if kind == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()


def describe(strategy: tf.distribute.Strategy) -> str:
    """E.g. "MultiWorkerMirroredStrategy, 2 replicas (worker 0 of 2, chief)"."""
    # Named as the API exports them (MultiWorkerMirroredStrategy's class is
    # CollectiveAllReduceStrategy).
    name = next(
        (
            label
            for label, kind in (
                ("MultiWorkerMirroredStrategy", tf.distribute.MultiWorkerMirroredStrategy),
                ("MirroredStrategy", tf.distribute.MirroredStrategy),
            )
            if isinstance(strategy, kind)
        ),
        "default strategy",
    )
    replicas = strategy.num_replicas_in_sync
    text = f"{name}, {replicas} replica{'' if replicas == 1 else 's'}"
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None and resolver.task_type:
        workers = sum(
            len(resolver.cluster_spec().as_dict().get(kind, [])) for kind in ("chief", "worker")
        )
        text += (
            f" ({resolver.task_type} {resolver.task_id} of {workers}"
            f"{', chief' if is_chief(strategy) else ''})"
        )
    return text


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's real checkpoints, summaries and logs."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def check_batch(batch_size: int, replicas: int) -> int:
    """Each replica's share of the global batch.

    Raises:
      TrainerError: the batch does not split evenly over the replicas.
    """
    if batch_size % replicas:
        raise TrainerError(
            f"--batch-size {batch_size} does not split evenly over "
            f"{replicas} replicas; pass a multiple of {replicas}"
        )
    return batch_size // replicas


class WorkerFolders:
    """A non-chief worker's stand-ins for the real output folders: one local temporary
    folder, removed on exit. For the chief, `path` returns the real folder."""

    def __init__(self, chief: bool):
        self._root = None if chief else tempfile.mkdtemp(prefix="dcgan-worker-")

    def path(self, real: str, name: str) -> str:
        return real if self._root is None else f"{self._root}/{name}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            logging.debug("removed the worker's temporary folder %s", self._root)
        return False


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether the run spans several processes, which must agree on when to stop."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return bool(
        resolver is not None
        and resolver.task_type
        and sum(
            len(tasks)
            for kind, tasks in resolver.cluster_spec().as_dict().items()
            if kind in ("chief", "worker")
        )
        > 1
    )


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Waits until every worker of a multi-worker run gets here (a one-number
    all-reduce), so none exits while the chief still writes its last summaries: the
    coordination service reports a worker gone early as a crash."""
    if is_multi_worker(strategy):
        tf.function(
            lambda: strategy.reduce(
                tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.ones([])), axis=None
            )
        )()  # traced: eager collectives warn
