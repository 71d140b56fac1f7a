"""The command line's flags: the parser, and its arguments resolved into a TrainConfig.

Only flags the user gave override (argparse.SUPPRESS): the defaults come from
TrainConfig, and on resume the hyperparameters from the saved config.json (the folders
never: they come from the flags and defaults, as for a fresh run). Mode flags (--sample,
--evaluate, ...) pick what task.main does, are not config fields, and refuse the flags
their mode does not use (MODES).

On Vertex AI custom training the folders come from the environment the job sets
(VERTEX_FOLDERS), for each folder no flag names: flags and --job-dir win. task.py passes
os.environ to `resolve`; nothing else reads the environment.
"""

import argparse
import dataclasses
import os

from trainer.train_config import (
    ARCHS,
    LATENT_DISTRIBUTIONS,
    MODE_SEEKING_BOUNDS,
    PRECISIONS,
    STRATEGIES,
    TrainConfig,
    defaults,
    load_saved_config,
    resolve_resume,
)

DEFAULTS = TrainConfig()
CONDITIONAL = defaults(conditional=True)
# Each mode and the flags that apply to it (what task.py passes it); it refuses every
# other flag, so nothing given is silently ignored. Without a mode, the command trains.
MODES = {
    "sample": ("checkpoint_dir", "sample_dir", "seed", "digit", "job_dir"),
    "evaluate": ("checkpoint_dir", "data_dir", "seed", "num_eval_samples", "job_dir"),
    "interpolate": (
        "checkpoint_dir",
        "sample_dir",
        "seed",
        "slerp",
        "gif",
        "digit",
        "job_dir",
    ),
    "progress_gif": ("log_dir", "job_dir"),
    "probe": ("checkpoint_dir", "data_dir", "job_dir"),
    "export": ("checkpoint_dir", "overwrite", "tflite", "job_dir"),
}
MODE_OPTIONS = {
    "slerp": ("interpolate",),
    "gif": ("interpolate",),  # option -> modes
    "num_eval_samples": ("evaluate",),
    "tflite": ("export",),
    "digit": ("sample", "interpolate"),
}
# Flags that are not TrainConfig fields (--strategy is task.py's: how this machine
# runs the training, not what it trains).
MODE_FLAGS = (*MODES, *MODE_OPTIONS, "job_dir", "strategy")
MODE_MINIMUMS = {
    "sample": 1,
    "num_eval_samples": 10,  # precision/recall need k + 1
    "interpolate": 1,
}
_TRUE, _FALSE = {"true", "1", "yes", "y", "on"}, {"false", "0", "no", "n", "off"}
# The config field each environment variable of Vertex AI custom training sets.
# The shipped class-conditional model, which --digit samples when no folder is named.
CONDITIONAL_MODEL_DIR = os.path.join(DEFAULTS.checkpoint_dir, "conditional")
VERTEX_FOLDERS = {
    "checkpoint_dir": "AIP_CHECKPOINT_DIR",
    "log_dir": "AIP_TENSORBOARD_LOG_DIR",
    "model_dir": "AIP_MODEL_DIR",
}


def parse_bool(text: str) -> bool:
    """'True'/'false'/'1'/'0'/'yes'/'no' (any case) -> bool, for --continue-train."""
    if text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.task",
        argument_default=argparse.SUPPRESS,
        description="Train a DCGAN on MNIST, resume it, or sample digits from it.",
    )
    add = parser.add_argument
    add(
        "--data-dir",
        help="folder with the four MNIST IDX files (.gz or raw) or mnist.npz "
        "(default: ~/.keras/datasets/mnist.npz, downloaded if missing)",
    )
    add("--checkpoint-dir", help=f"checkpoint folder (default: {DEFAULTS.checkpoint_dir})")
    add("--log-dir", help=f"TensorBoard folder (default: {DEFAULTS.log_dir})")
    add("--sample-dir", help=f"folder for --sample PNGs (default: {DEFAULTS.sample_dir})")
    add(
        "--job-dir",
        help="Cloud ML Engine job folder: checkpoints, summaries and samples "
        "default to its checkpoints/, summary/ and samples/",
    )
    add(
        "--sample",
        type=int,
        metavar="N",
        help="write N generated PNGs and grid.png from "
        "the latest checkpoint, then exit (no data or training needed)",
    )
    add(
        "--evaluate",
        nargs="?",
        const="",
        metavar="PNG_DIR",
        help="judge the latest "
        "checkpoint's samples (or the PNGs in PNG_DIR) against the MNIST test set with the "
        "MNIST classifier, beside the real-data floor; prints a table and a JSON line",
    )
    add(
        "--interpolate",
        type=int,
        metavar="K",
        help="write interpolation.png: K rows of "
        "10 digits walking between two random noise vectors, from the latest checkpoint, "
        "then exit",
    )
    add(
        "--digit",
        type=int,
        metavar="D",
        help="with --sample: N images of digit D (0-9); "
        "with --interpolate: the walks between noise vectors all draw D. Needs a model "
        f"trained with --conditional (default: the shipped {CONDITIONAL_MODEL_DIR})",
    )
    add(
        "--slerp",
        action="store_true",
        help="with --interpolate: walk along the great "
        "circle (spherical interpolation) instead of a straight line",
    )
    add(
        "--gif",
        action="store_true",
        help="with --interpolate: also write interpolation.gif, every walk moving at once",
    )
    add(
        "--progress-gif",
        action="store_true",
        help="write LOG_DIR/progress.gif from the "
        "grids a training run saved at each epoch end in --log-dir, then exit",
    )
    add(
        "--probe",
        action="store_true",
        help="train a linear classifier on the latest "
        "checkpoint's discriminator features with 100 and 1,000 labelled images and print "
        "its MNIST test accuracy beside the same on raw pixels (needs --data-dir)",
    )
    add(
        "--export",
        metavar="DIR",
        help="write the latest checkpoint's generator as a "
        "SavedModel for TF Serving into DIR/<step>/ (signatures serving_default: z -> "
        "images in [0, 1], and generate: count, seed -> images), with model.json, then "
        "exit",
    )
    add(
        "--tflite",
        action="store_true",
        help="with --export: also write generator.tflite (serving_default) for TensorFlow Lite",
    )
    add(
        "--num-eval-samples",
        type=int,
        metavar="N",
        help="samples --evaluate draws from the checkpoint (default: 10000)",
    )
    add(
        "--continue-train",
        type=parse_bool,
        nargs="?",
        const=True,
        metavar="BOOL",
        help="resume the run in --checkpoint-dir at its exact step (True/False)",
    )
    add(
        "--overwrite",
        action="store_true",
        help="let a fresh run delete the checkpoints "
        "already in --checkpoint-dir; with --export, replace an export of the same step",
    )
    add(
        "--num-epochs",
        type=int,
        help=f"epochs to train (default: {DEFAULTS.num_epochs}; "
        f"with --conditional, {CONDITIONAL.num_epochs})",
    )
    add("--train-steps", type=int, help="total optimizer steps; overrides --num-epochs")
    add("--batch-size", type=int, help=f"images per step (default: {DEFAULTS.batch_size})")
    add(
        "--learning-rate",
        type=float,
        help=f"the generator's Adam learning rate (default: {DEFAULTS.learning_rate})",
    )
    add(
        "--d-learning-rate",
        type=float,
        help=f"the discriminator's Adam learning rate (default: {DEFAULTS.d_learning_rate})",
    )
    add(
        "--lr-decay-epochs",
        type=int,
        metavar="N",
        help=f"both learning rates fall "
        f"linearly to zero over the last N epochs of the budget (all of a shorter run), "
        f"0 constant (default: {DEFAULTS.lr_decay_epochs}; with --conditional, "
        f"{CONDITIONAL.lr_decay_epochs})",
    )
    add("--beta1", type=float, help=f"Adam beta1 (default: {DEFAULTS.beta1})")
    add(
        "--arch",
        choices=ARCHS,
        help=f"dcgan, or mlp: the fully connected GAN of the "
        f"tutorials, as a baseline (default: {DEFAULTS.arch})",
    )
    add(
        "--conditional",
        action="store_true",
        help="train on the digits' labels too, so "
        "--sample --digit D draws the digit asked for (needs the labels files beside the "
        "images)",
    )
    add(
        "--projection",
        type=parse_bool,
        metavar="BOOL",
        help=f"with --conditional, the "
        f"discriminator also reads the digit out of its last features (a projection "
        f"discriminator) beside the digit's planes at its input (default: "
        f"{CONDITIONAL.projection})",
    )
    add("--latent-dim", type=int, help=f"noise length (default: {DEFAULTS.latent_dim})")
    add(
        "--latent-distribution",
        choices=LATENT_DISTRIBUTIONS,
        help=f"distribution of the "
        f"noise: normal N(0, 1) or uniform U(-1, 1) (default: "
        f"{DEFAULTS.latent_distribution})",
    )
    add(
        "--generator-width",
        type=int,
        help=f"generator channels at 14x14 (default: {DEFAULTS.generator_width})",
    )
    add(
        "--discriminator-width",
        type=int,
        help=f"discriminator channels at 14x14 (default: {DEFAULTS.discriminator_width})",
    )
    add(
        "--generator-depth",
        type=int,
        help=f"3x3 convolutions added at each of the "
        f"generator's hidden resolutions (default: {DEFAULTS.generator_depth})",
    )
    add(
        "--discriminator-depth",
        type=int,
        help=f"3x3 convolutions added at each of the "
        f"discriminator's hidden resolutions (default: {DEFAULTS.discriminator_depth})",
    )
    add(
        "--r1-gamma",
        type=float,
        help=f"R1 penalty weight on real images, 0 off (default: {DEFAULTS.r1_gamma})",
    )
    add(
        "--r1-interval",
        type=int,
        help=f"steps between R1 penalties, each weighted by "
        f"as many (default: {DEFAULTS.r1_interval})",
    )
    add(
        "--mode-seeking",
        type=float,
        help=f"weight of the mode-seeking term (MSGAN), "
        f"which rewards different digits from different noise, 0 off (default: "
        f"{DEFAULTS.mode_seeking}; with --conditional, {CONDITIONAL.mode_seeking})",
    )
    add(
        "--mode-seeking-bound",
        choices=MODE_SEEKING_BOUNDS,
        help=f"real: a pair's "
        f"images count as different only up to how much two real images of their digit "
        f"differ, so no digit varies more than real ones; none: uncapped (default: "
        f"{DEFAULTS.mode_seeking_bound}; with --conditional, "
        f"{CONDITIONAL.mode_seeking_bound})",
    )
    add(
        "--mismatch",
        type=float,
        help=f"with --conditional, weight of the "
        f"mismatched-digit term: the discriminator also learns that real images with a "
        f"wrong digit are fake, 0 off (default: {CONDITIONAL.mismatch})",
    )
    add(
        "--label-smoothing",
        type=float,
        help=f"real images' target is 1 minus this (default: {DEFAULTS.label_smoothing})",
    )
    add(
        "--precision",
        choices=PRECISIONS,
        help=f"auto: bfloat16 where the hardware "
        f"computes it natively (AVX512-BF16 or AMX CPUs, GPUs of compute capability 8.0+), "
        f"float32 elsewhere; bfloat16: mixed precision with float32 weights; float32 "
        f"(default: {DEFAULTS.precision})",
    )
    add(
        "--strategy",
        choices=STRATEGIES,
        help="tf.distribute strategy: auto takes "
        "multi-worker when TF_CONFIG names several workers, mirrored when several GPUs "
        "are visible, else one device; --batch-size stays the global batch (default: "
        "auto)",
    )
    add(
        "--xla",
        action="store_true",
        help="compile the train step with XLA (half the "
        "speed on an AMX Xeon, 1.17x on an AVX2 EPYC: measure yours with python -m "
        "trainer.tools.bench --variants)",
    )
    add(
        "--ema-decay",
        type=float,
        help=f"decay of the generator average sampled from, 0 off (default: {DEFAULTS.ema_decay})",
    )
    add(
        "--eval-samples",
        type=int,
        help=f"samples judged at each epoch end for the "
        f"Frechet distance and classifier score in TensorBoard, 0 off (default: "
        f"{DEFAULTS.eval_samples})",
    )
    add("--seed", type=int, help=f"random seed (default: {DEFAULTS.seed})")
    add(
        "--deterministic",
        action="store_true",
        help="op determinism: bit-identical reruns and resumes, somewhat slower",
    )
    add(
        "--log-freq",
        type=int,
        help=f"steps between log lines and scalar summaries (default: {DEFAULTS.log_freq})",
    )
    add(
        "--checkpoint-freq",
        type=int,
        help=f"steps between checkpoints, besides each "
        f"epoch end and the end (default: {DEFAULTS.checkpoint_freq})",
    )
    return parser


def resolve(args: argparse.Namespace, environ=None) -> TrainConfig:
    """The run's config: flags over defaults; on resume, flags over the saved
    hyperparameters, the folders from flags and defaults (config.json has none).

    Args:
      args: the parsed flags.
      environ: the environment variables (task.py passes os.environ); a folder no flag
        and no --job-dir sets comes from its VERTEX_FOLDERS variable when that is set.
    """
    overrides = {k: v for k, v in vars(args).items() if k not in MODE_FLAGS}
    if "job_dir" in vars(args):
        for field, sub in (
            ("checkpoint_dir", "checkpoints"),
            ("log_dir", "summary"),
            ("sample_dir", "samples"),
        ):
            overrides.setdefault(field, os.path.join(args.job_dir, sub))
    for field, variable in VERTEX_FOLDERS.items():
        if (environ or {}).get(variable):
            overrides.setdefault(field, environ[variable])
    if "digit" in vars(args):  # only a conditional model draws a chosen digit
        overrides.setdefault("checkpoint_dir", CONDITIONAL_MODEL_DIR)
    if overrides.get("continue_train"):
        saved_dir = overrides.get("checkpoint_dir", DEFAULTS.checkpoint_dir)
        return resolve_resume(load_saved_config(saved_dir), overrides)
    return dataclasses.replace(defaults(bool(overrides.get("conditional"))), **overrides)


def as_flag(message: str) -> str:
    """'batch_size must be ...' -> '--batch-size must be ...': name what the user typed."""
    field = message.split(" ", 1)[0]
    if field in {f.name for f in dataclasses.fields(TrainConfig)}:
        return "--" + field.replace("_", "-") + message[len(field) :]
    return message


def check_modes(args: argparse.Namespace) -> None:
    """Raises ValueError for a mode flag below its minimum, two modes at once, an option
    without its mode, or a flag the mode given does not use (see MODES)."""
    given = vars(args)
    for flag, least in MODE_MINIMUMS.items():
        if given.get(flag, least) < least:
            raise ValueError(f"{_flag(flag)} must be at least {least}, got {given[flag]}")
    modes = [name for name in given if name in MODES]
    if len(modes) > 1:
        raise ValueError(
            " and ".join(map(_flag, modes)) + " are separate modes; give one at a time"
        )
    for flag, options_modes in MODE_OPTIONS.items():
        if flag in given and not any(mode in given for mode in options_modes):
            raise ValueError(
                f"{_flag(flag)} only applies with " + " or ".join(map(_flag, options_modes))
            )
    for mode in modes:
        for flag in given:
            if flag == mode or flag in MODES[mode]:
                continue
            if any(flag in applies for applies in MODES.values()):
                raise ValueError(f"{_flag(flag)} does not apply to {_flag(mode)}")
            raise ValueError(f"{_flag(flag)} applies to training only, not to {_flag(mode)}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
