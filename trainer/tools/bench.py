"""python -m trainer.tools.bench: how fast training and sampling run on this machine, in figures.

    python -m trainer.tools.bench --data-dir ../shared/mnist     # throughput, peak, memory
    python -m trainer.tools.bench --data-dir ../shared/mnist --time-to-quality 30
    python -m trainer.tools.bench --sizes     # each image size at its default networks

Prints a table, then one JSON line with every figure. Training throughput is measured
at the default settings after compilation; the float32 peak is a large matmul through
TensorFlow in the same process, so the ratio compares like with like.
"""

import argparse
import dataclasses
import itertools
import json
import logging
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from trainer import cli, data, hardware, loaders, sample, train, train_state, train_step
from trainer.errors import TrainerError
from trainer.image_spec import MNIST, ImageSpec
from trainer.tools import time_to_quality
from trainer.tools.child import data_flag, run_child
from trainer.tools.flops import matmul_peak_gflops, train_flops_per_image
from trainer.train_config import CONDITIONAL_DEFAULTS, TrainConfig, defaults

# The CPU flags that decide the speed of training here: AVX2 and AVX-512 for float32,
# AVX512-BF16 and AMX for bfloat16.
FLAGS_SHOWN = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
THROUGHPUT_CYCLES, THROUGHPUT_REPEATS = 8, 3  # R1 cycles per timing, timings kept best of
SAMPLE_COUNT = 10_000


def train_images_per_sec(
    config: TrainConfig,
    images: np.ndarray,
    cycles: int = THROUGHPUT_CYCLES,
    repeats: int = THROUGHPUT_REPEATS,
) -> float:
    """Steady-state training throughput: the real step and input pipeline, timed over
    whole R1 cycles after both compiled variants of the step have run; the best of
    `repeats` timings, so a burst of other work on the machine does not count."""
    timed = throughput_timer(config, images, cycles)
    return max(timed() for _ in range(repeats))


def throughput_timer(
    config: TrainConfig,
    images: np.ndarray,
    cycles: int = THROUGHPUT_CYCLES,
    labels: np.ndarray = None,
):
    """Builds and compiles the training step of `config`; returns a function that
    trains `cycles` R1 cycles and gives their images/s. `labels`, the images' digits,
    for a conditional config."""
    state = train_state.build_state(config)
    labels = labels if config.conditional else None
    step = train_step.make_train_step(
        state, config, pair_bounds=train.pair_bounds_for(config, images, labels)
    )
    interval = config.r1_interval
    batches = (
        batch
        for epoch in itertools.count()
        for batch in data.epoch_batches(
            images, config.batch_size, config.seed, epoch, labels=labels
        )
    )

    def run_step(regularize):
        real, digits = next(batches)  # digits None for an unconditional config
        return step(real, regularize, labels=digits)

    float(run_step(True)["d_loss"])  # compile both variants
    for index in range(interval):
        float(run_step(index == 0)["d_loss"])

    def timed() -> float:
        start = time.perf_counter()
        for index in range(cycles * interval):
            metrics = run_step(index % interval == 0)
            float(metrics["d_loss"])  # the loop reads the losses every step, as here
        return cycles * interval * config.batch_size / (time.perf_counter() - start)

    return timed


def sampling_images_per_sec(checkpoint_dir: str, count: int = None) -> dict:
    """--sample's throughput once the model is loaded: generation plus PNG writing of
    `count` (default SAMPLE_COUNT) images."""
    count = count or SAMPLE_COUNT
    generator, config = loaders.load_sampler(checkpoint_dir)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        sample.write_images(generator, config.latent_dim, folder, count, seed=0)
        seconds = time.perf_counter() - start
    return {"sample_images_per_sec": count / seconds, "sample_seconds": seconds}


def benchmark(
    data_dir,
    checkpoint_dir: str,
    train_steps: int,
    machine,
    cycles: int = THROUGHPUT_CYCLES,
    repeats: int = THROUGHPUT_REPEATS,
) -> dict:
    """Every figure of the default table; see the module docstring. `machine` is the
    trainer.hardware.Hardware the figures are measured on; `cycles` and `repeats` as for
    train_images_per_sec."""
    config = resolved(machine, data_dir=data_dir)
    results = {
        **describe(machine),
        "cores": os.cpu_count(),
        "tensorflow": tf.__version__,
        "batch_size": config.batch_size,
        "precision": config.compute_precision,
    }
    with tempfile.TemporaryDirectory() as folder:
        results["sample16_seconds"] = run_child(
            [
                "--sample",
                "16",
                "--checkpoint-dir",
                checkpoint_dir,
                "--sample-dir",
                os.path.join(folder, "s16"),
            ]
        )["seconds"]
        child = run_child(
            [
                "--train-steps",
                str(train_steps),
                "--checkpoint-dir",
                os.path.join(folder, "ckpt"),
                "--log-dir",
                os.path.join(folder, "log"),
            ]
            + data_flag(data_dir)
        )
        results["train_peak_rss_mb"] = child["peak_rss_mb"]
    images, _ = data.load_mnist(data_dir, "train")
    flops = train_flops_per_image(config)
    results["train_images_per_sec"] = train_images_per_sec(config, images, cycles, repeats)
    results["flops_per_image"] = flops["train"]
    results["achieved_gflops"] = results["train_images_per_sec"] * flops["train"] / 1e9
    results["peak_gflops"] = matmul_peak_gflops("float32")
    results["peak_bfloat16_gflops"] = bfloat16_peak_gflops(machine)
    results["peak_fraction"] = results["achieved_gflops"] / results["peak_gflops"]
    results["bfloat16_peak_fraction"] = (
        results["achieved_gflops"] / results["peak_bfloat16_gflops"]
        if results["peak_bfloat16_gflops"]
        else None
    )
    results.update(sampling_images_per_sec(checkpoint_dir))
    return results


def bfloat16_peak_gflops(machine):
    """matmul_peak_gflops("bfloat16"), or None where bfloat16 kernels fail on `machine`
    (hardware.bfloat16_kernels_fail: a cap below the CPU's bfloat16 instructions)."""
    if hardware.bfloat16_kernels_fail(machine):
        return None
    return matmul_peak_gflops("bfloat16")


# Training options measured against the defaults by --variants: (label, config changes).
VARIANTS = [
    ("defaults (--precision auto)", {}),
    ("--precision float32", {"precision": "float32"}),
    ("--precision bfloat16", {"precision": "bfloat16"}),
    ("XLA (--xla)", {"xla": True}),
    ("R1 every step (--r1-interval 1)", {"r1_interval": 1}),
    ("no R1 (--r1-gamma 0)", {"r1_gamma": 0.0}),
    ("batch 32", {"batch_size": 32}),
    ("batch 128", {"batch_size": 128}),
    ("batch 256", {"batch_size": 256}),
    ("--conditional (both terms)", {"conditional": True, **CONDITIONAL_DEFAULTS}),
    (
        "--conditional --mismatch 0",
        {"conditional": True, **CONDITIONAL_DEFAULTS, "mismatch": 0.0},
    ),
    ("--conditional --mismatch 0 --mode-seeking 0", {"conditional": True}),
]


def variants(
    data_dir, machine, repeats: int = THROUGHPUT_REPEATS, cycles: int = THROUGHPUT_CYCLES
) -> list:
    """Steady-state training images/s of each VARIANTS entry on `machine` (a
    trainer.hardware.Hardware), in one process (round_robin)."""
    images, labels = data.load_mnist(data_dir, "train")
    # bfloat16 variants are left out where its kernels fail (they would abort the run).
    bfloat16_fails = hardware.bfloat16_kernels_fail(machine)
    runnable = [
        (label, config)
        for label, config in ((label, resolved(machine, **changes)) for label, changes in VARIANTS)
        if not (bfloat16_fails and config.compute_precision == "bfloat16")
    ]
    configs = [config for _, config in runnable]
    best = round_robin(
        [throughput_timer(config, images, cycles, labels) for config in configs], repeats
    )
    return [
        {
            "variant": label,
            "train_images_per_sec": rate,
            "achieved_gflops": rate * train_flops_per_image(config)["train"] / 1e9,
            "vs_defaults": rate / best[0],
        }
        for (label, _), config, rate in zip(runnable, configs, best)
    ]


def round_robin(timers: list, repeats: int) -> list:
    """Each timer's best images/s over `repeats` rounds that time them all in turn, so
    that a slow spell of the machine cannot favour one over another."""
    best = [0.0] * len(timers)
    for round_ in range(repeats):
        for index, timed in enumerate(timers):
            best[index] = max(best[index], timed())
        logging.info(
            "round %d/%d: %s", round_ + 1, repeats, ", ".join(f"{rate:.0f}" for rate in best)
        )
    return best


# The image sizes --sizes measures, each at its default networks: (label, data set,
# --image-size, channels).
SIZES = [
    ("28x28 grey (MNIST)", "mnist", None, 1),
    ("32x32 grey", "folder", 32, 1),
    ("32x32 colour", "folder", 32, 3),
    ("64x64 grey", "folder", 64, 1),
    ("64x64 colour", "folder", 64, 3),
]
SIZE_IMAGES = 1024  # random images a size is timed on: speed does not read their content


def size_config(machine, dataset: str, size, channels: int) -> TrainConfig:
    """The default config of a run of `dataset` at `size` x `size` x `channels`, its
    precision resolved on `machine`."""
    config = defaults(dataset=dataset, image_size=size)
    spec = MNIST if size is None else ImageSpec(size, size, channels)
    if size is not None:
        config = dataclasses.replace(
            config, dataset=dataset, image_size=size, channels=channels, image=spec
        )
    precision, _, _ = hardware.choose_precision(config.precision, machine)
    return dataclasses.replace(config, resolved_precision=precision)


def sizes(machine, repeats: int = THROUGHPUT_REPEATS, cycles: int = THROUGHPUT_CYCLES) -> list:
    """Steady-state training images/s of each SIZES entry at its default networks, and
    the minutes 10,000 training images take, in one process (round_robin)."""
    rng = np.random.default_rng(0)
    configs, timers = [], []
    for _, dataset, size, channels in SIZES:
        config = size_config(machine, dataset, size, channels)
        shape = config.image.shape if channels == 3 else config.image.shape[:2]
        images = rng.integers(0, 256, (SIZE_IMAGES, *shape), dtype=np.uint8)
        configs.append(config)
        timers.append(throughput_timer(config, images, cycles))
    best = round_robin(timers, repeats)
    return [
        {
            "size": label,
            "networks": (
                f"{c.generator_width}/{c.discriminator_width} wide, "
                f"{c.generator_depth}/{c.discriminator_depth} deep"
            ),
            "precision": c.compute_precision,
            "train_images_per_sec": rate,
            "flops_per_image": train_flops_per_image(c)["train"],
            "minutes_per_10k_images": 10_000 / rate / 60,
        }
        for (label, *_), c, rate in zip(SIZES, configs, best)
    ]


def format_sizes(rows: list) -> str:
    lines = [
        f"{'images':<22}{'networks (G/D)':<24}{'precision':<11}{'images/s':>9}"
        f"{'GFLOPs/img':>11}{'min/10k img':>12}"
    ]
    lines += [
        f"{r['size']:<22}{r['networks']:<24}{r['precision']:<11}"
        f"{r['train_images_per_sec']:>9.0f}{r['flops_per_image'] / 1e9:>11.2f}"
        f"{r['minutes_per_10k_images']:>12.2f}"
        for r in rows
    ]
    return "\n".join(lines)


def format_variants(rows: list) -> str:
    lines = [f"{'variant':<36}{'images/s':>10}{'GFLOP/s':>9}{'x defaults':>12}"]
    lines += [
        f"{r['variant']:<36}{r['train_images_per_sec']:>10.0f}"
        f"{r['achieved_gflops']:>9.1f}{r['vs_defaults']:>12.2f}"
        for r in rows
    ]
    return "\n".join(lines)


def resolved(machine, **changes) -> TrainConfig:
    """The defaults with `changes`, their precision resolved on `machine` as the trainer
    resolves it."""
    config = dataclasses.replace(TrainConfig(), **changes)
    precision, _, _ = hardware.choose_precision(config.precision, machine)
    return dataclasses.replace(config, resolved_precision=precision)


def describe(machine) -> dict:
    """The figures' hardware: CPU, the flags that matter, the oneDNN cap, and what
    --precision auto chose there and why."""
    precision, reason, _ = hardware.choose_precision("auto", machine)
    return {
        "cpu": machine.cpu_name,
        "cpu_flags": [flag for flag in FLAGS_SHOWN if flag in machine.cpu_flags],
        "onednn_max_cpu_isa": machine.isa_cap,
        "auto_precision": precision,
        "auto_reason": reason,
    }


TABLE = [  # (key, label, format)
    ("train_images_per_sec", "training images/s (steady state)", "{:.0f}"),
    ("flops_per_image", "FLOPs per training image", "{:.3g}"),
    ("achieved_gflops", "achieved GFLOP/s", "{:.1f}"),
    ("peak_gflops", "float32 matmul peak GFLOP/s", "{:.1f}"),
    ("peak_fraction", "achieved / float32 peak", "{:.2f}"),
    ("peak_bfloat16_gflops", "bfloat16 matmul peak GFLOP/s", "{:.1f}"),
    ("bfloat16_peak_fraction", "achieved / bfloat16 peak", "{:.2f}"),
    ("sample_images_per_sec", f"--sample images/s ({SAMPLE_COUNT} PNGs)", "{:.0f}"),
    ("sample16_seconds", "--sample 16, whole process, s", "{:.2f}"),
    ("train_peak_rss_mb", "training peak memory, MB", "{:.0f}"),
]


def format_machine(results: dict) -> str:
    """Two lines: the CPU and its flags, then what --precision auto chose and why."""
    cap = results["onednn_max_cpu_isa"]
    return (
        f"{results['cpu']}, {results['cores']} cores, flags: "
        f"{' '.join(results['cpu_flags']) or 'none of ' + ' '.join(FLAGS_SHOWN)}"
        f"{f', ONEDNN_MAX_CPU_ISA={cap}' if cap else ''}\n"
        f"--precision auto: {results['auto_precision']} ({results['auto_reason']})"
    )


def format_table(results: dict) -> str:
    lines = [
        format_machine(results),
        f"TensorFlow {results['tensorflow']}, batch "
        f"{results['batch_size']}, {results['precision']}",
    ]
    lines += [f"{label:<40}{_shown(fmt, results[key]):>12}" for key, label, fmt in TABLE]
    return "\n".join(lines)


def _shown(fmt: str, value) -> str:
    """A figure as `fmt` formats it; n/a for one not measured here (None)."""
    return "n/a" if value is None else fmt.format(value)


def _measure(args, machine) -> dict:
    """Runs the measurement `args` ask for on `machine`, prints its table, returns its
    figures."""
    results = {**describe(machine), "cores": os.cpu_count()}
    if args.variants:
        results.update(
            peak_gflops=matmul_peak_gflops("float32"),
            peak_bfloat16_gflops=bfloat16_peak_gflops(machine),
            variants=variants(args.data_dir, machine, args.repeats, args.cycles),
        )
        print(format_machine(results))
        print(
            f"matmul peaks: float32 {results['peak_gflops']:.1f} GFLOP/s, bfloat16 "
            f"{_shown('{:.1f}', results['peak_bfloat16_gflops'])} GFLOP/s"
        )
        print(format_variants(results["variants"]))
    elif args.sizes:
        results["sizes"] = sizes(machine, args.repeats, args.cycles)
        print(format_machine(results))
        print(format_sizes(results["sizes"]))
    elif args.time_to_quality:
        with tempfile.TemporaryDirectory() as folder:
            results.update(
                time_to_quality.measure(
                    args.data_dir, args.time_to_quality, args.output_dir or folder
                )
            )
        print(format_machine(results))
        print(time_to_quality.format_table(results))
    else:
        results = benchmark(
            args.data_dir,
            args.checkpoint_dir,
            args.train_steps,
            machine,
            args.cycles,
            args.repeats,
        )
        print(format_table(results))
    return results


def main(argv=None) -> int:
    cli.setup_logging()
    parser = argparse.ArgumentParser(
        prog="python -m trainer.tools.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", help="MNIST folder, as for trainer.task")
    parser.add_argument(
        "--checkpoint-dir",
        default=TrainConfig.checkpoint_dir,
        help="model sampled from (default: the shipped model)",
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=300,
        help="steps of the training run whose peak memory is measured",
    )
    parser.add_argument(
        "--time-to-quality",
        type=float,
        metavar="MINUTES",
        help="instead: train from scratch for MINUTES with the README's "
        "command and report when the Frechet distance fell below 30x, "
        "10x and 2x the real-data floor",
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="instead: training "
        "images/s of each speed option (precision, XLA, R1 cadence, "
        "batch size) beside the defaults",
    )
    parser.add_argument(
        "--sizes",
        action="store_true",
        help="instead: training images/s at 28x28 (MNIST), 32x32 and 64x64, grey and "
        "colour, each with its default networks",
    )
    parser.add_argument(
        "--cycles",
        type=int,
        default=THROUGHPUT_CYCLES,
        help="R1 cycles "
        "(16 steps at the defaults) in each throughput timing (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=THROUGHPUT_REPEATS,
        help="timings of each throughput figure, the best kept (default: %(default)s)",
    )
    parser.add_argument(
        "--output-dir",
        help="with --time-to-quality: keep the run's "
        "checkpoints (DIR/ckpt) and summaries (DIR/log) there, resumable",
    )
    args = parser.parse_args(argv)
    for name in ("cycles", "repeats", "train_steps"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}"
            )
    if args.time_to_quality is not None and not args.time_to_quality > 0:
        parser.error(
            f"--time-to-quality must be a positive number of minutes, got {args.time_to_quality}"
        )
    machine = hardware.detect(os.environ)
    try:
        results = _measure(args, machine)
    except TrainerError as err:
        return cli.fail(err)
    print(json.dumps(results, sort_keys=True, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
