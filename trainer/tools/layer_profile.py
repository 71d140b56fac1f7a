"""python -m trainer.tools.layer_profile: where a training step's time goes, layer by layer.

    python -m trainer.tools.layer_profile                     # the defaults, --precision auto
    python -m trainer.tools.layer_profile --precision bfloat16 --batch-size 128

Times each convolution and dense layer of the default generator and discriminator alone,
on a batch of its real input shape: the forward pass, and the forward pass with the
gradients of its input and weights (what training runs), best of a few timings, with the
GFLOP/s each makes (FLOPs as trainer.tools.flops counts them; the backward pass costs twice the
forward) beside the float32 matmul peak measured in the same process.
"""

import argparse
import os
import sys
import time

import tensorflow as tf

from trainer import cli, hardware, model
from trainer.tools import bench
from trainer.tools import flops as flop_counts
from trainer.train_config import TrainConfig

REPEATS = 3  # timings per figure, the best kept


def profile(config: TrainConfig, steps: int = 10) -> list:
    """One row per conv/dense layer of `config`'s networks: {"layer", "shape",
    "forward_ms", "train_ms", "forward_gflops", "train_gflops"} at config.batch_size."""
    nets = [model.build(config, name, config.compute_precision) for name in model.NETWORKS]
    rows = []
    for net in nets:
        for layer in net.layers:
            flops = flop_counts.one_layer_flops(layer)
            if flops is None:
                continue
            flops *= config.batch_size
            x = tf.cast(
                tf.random.normal([config.batch_size, *layer.input.shape[1:]]),
                layer.compute_dtype,
            )
            forward_s, train_s = _time_layer(layer, x, steps)
            rows.append(
                {
                    "layer": f"{net.name}/{layer.name}",
                    "shape": f"{tuple(layer.input.shape[1:])} -> {tuple(layer.output.shape[1:])}",
                    "forward_ms": forward_s * 1e3,
                    "train_ms": train_s * 1e3,
                    "forward_gflops": flops / forward_s / 1e9,
                    "train_gflops": 3 * flops / train_s / 1e9,
                }
            )
    return rows


def _time_layer(layer, x, steps: int):
    """Best seconds per call of the layer's forward pass, and of forward plus input and
    weight gradients."""

    @tf.function
    def forward(x):
        return layer(x)

    @tf.function
    def train(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x), tf.float32))
        return tape.gradient(loss, [x] + layer.trainable_variables)

    best = []
    for fn in (forward, train):
        tf.nest.map_structure(lambda t: t.numpy(), fn(x))  # trace and warm up
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            for _ in range(steps):
                result = fn(x)
            tf.nest.map_structure(lambda t: t.numpy(), result)
            times.append((time.perf_counter() - start) / steps)
        best.append(min(times))
    return best


def format_rows(rows: list) -> str:
    lines = [f"{'layer':<34}{'shape':<32}{'fwd ms':>8}{'GFLOP/s':>9}{'train ms':>10}{'GFLOP/s':>9}"]
    lines += [
        f"{r['layer']:<34}{r['shape']:<32}{r['forward_ms']:>8.2f}"
        f"{r['forward_gflops']:>9.1f}{r['train_ms']:>10.2f}{r['train_gflops']:>9.1f}"
        for r in rows
    ]
    lines.append(
        f"{'total':<66}{sum(r['forward_ms'] for r in rows):>8.2f}{'':>9}"
        f"{sum(r['train_ms'] for r in rows):>10.2f}"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    cli.setup_logging()
    parser = argparse.ArgumentParser(
        prog="python -m trainer.tools.layer_profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--precision", default="auto", choices=("auto", "bfloat16", "float32"))
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    machine = hardware.detect(os.environ)
    config = bench.resolved(machine, precision=args.precision, batch_size=args.batch_size)
    print(bench.format_machine({**bench.describe(machine), "cores": os.cpu_count()}))
    print(
        f"batch {config.batch_size}, {config.compute_precision}; float32 matmul peak "
        f"{flop_counts.matmul_peak_gflops('float32'):.1f} GFLOP/s"
    )
    print(format_rows(profile(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
