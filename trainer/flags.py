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
import typing

from trainer.errors import TrainerError
from trainer.train_config import (
    CONFIG_FILENAME,
    STRATEGIES,
    ModelConfig,
    RunConfig,
    TrainConfig,
    TrainingConfig,
    defaults,
    load_saved_config,
    resolve_resume,
)

DEFAULTS = TrainConfig()
# Each mode and the flags that apply to it (what task.py passes it); it refuses every
# other flag, so nothing given is silently ignored. Without a mode, the command trains.
MODES = {
    "sample": ("checkpoint_dir", "sample_dir", "seed", "digit", "dataset", "job_dir"),
    "evaluate": (
        "checkpoint_dir",
        "data_dir",
        "seed",
        "num_eval_samples",
        "judge",
        "dataset",
        "job_dir",
    ),
    "interpolate": (
        "checkpoint_dir",
        "sample_dir",
        "seed",
        "slerp",
        "gif",
        "digit",
        "dataset",
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
    "judge": ("evaluate",),
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
# The shipped class-conditional model, which --digit samples when no folder is named.
CONDITIONAL_MODEL_DIR = os.path.join(DEFAULTS.checkpoint_dir, "conditional")
# The shipped models of the other data sets, which --sample, --interpolate and
# --evaluate read with --dataset when no folder is named.
DATASET_MODEL_DIRS = {"fashion-mnist": os.path.join(DEFAULTS.checkpoint_dir, "fashion-mnist")}
SAMPLING_MODES = ("sample", "interpolate", "evaluate")
# The config field each environment variable of Vertex AI custom training sets.
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
    """The parser: the mode flags, then one flag per config field, its help and choices
    taken from the field's option (trainer.options), grouped by the config's parts."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer.task",
        argument_default=argparse.SUPPRESS,
        description="Train a DCGAN, resume it, or sample, evaluate and export it.",
    )
    _add_mode_flags(parser.add_argument_group("modes (without one, the command trains)"))
    parts = (
        ("where to read and write", RunConfig),
        ("the model (kept on resume)", ModelConfig),
        ("training", TrainingConfig),
    )
    for title, part in parts:
        group = parser.add_argument_group(title)
        if part is RunConfig:
            group.add_argument(
                "--job-dir",
                help="a job folder (a cloud job's, e.g. gs://bucket/run): checkpoints, "
                "summaries and samples default to its checkpoints/, summary/ and samples/",
            )
        for field in dataclasses.fields(part):
            if field.metadata.get("flag"):
                _add_field_flag(group, field)
        if part is TrainingConfig:
            group.add_argument(
                "--strategy",
                choices=STRATEGIES,
                help="tf.distribute strategy: auto takes multi-worker when TF_CONFIG names "
                "several workers, mirrored when several GPUs are visible, else one device; "
                "--batch-size stays the global batch (default: auto)",
            )
    return parser


def _add_field_flag(group, field) -> None:
    """--field-name for a config field: its type, choices and help from its option, and
    its default (and conditional runs' default) appended."""
    meta = field.metadata
    kwargs = {"help": meta["help"] + _default_text(field)}
    kind = _value_type(field)
    if meta["choices"]:
        kwargs["choices"] = meta["choices"]
    elif meta["metavar"] or kind is not bool:
        kwargs["metavar"] = meta["metavar"] or _METAVARS.get(kind, "TEXT")
        if field.name.endswith("_dir"):
            kwargs["metavar"] = "DIR"
    if kind is bool and meta["metavar"] == "BOOL":  # --continue-train True, or bare
        kwargs.update(type=parse_bool, nargs="?", const=True)
    elif kind is bool:
        kwargs["action"] = "store_true"
    else:
        kwargs["type"] = kind
    group.add_argument("--" + field.name.replace("_", "-"), **kwargs)


_METAVARS = {int: "N", float: "X"}


def _default_text(field) -> str:
    if field.default is None or field.default is False:
        return ""
    text = f" (default: {field.default}"
    if "conditional" in field.metadata:
        text += f"; with --conditional, {field.metadata['conditional']}"
    for name, value in field.metadata.get("dataset", {}).items():
        text += f"; with --dataset {name}, {value}"
    folder = {k: v for k, v in field.metadata.get("folder", {}).items() if v != field.default}
    if len(set(folder.values())) == 1 and len(folder) == len(field.metadata["folder"]):
        text += f"; a folder's, {next(iter(folder.values()))}"
    else:
        text += "".join(f"; a {size}-pixel folder's, {value}" for size, value in folder.items())
    return text + ")"


def _value_type(field):
    """int, float, str or bool: a field's type, Optional[...] unwrapped."""
    return next(t for t in typing.get_args(field.type) or (field.type,) if t is not type(None))


def _add_mode_flags(group) -> None:
    add = group.add_argument
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
        help="judge the latest checkpoint's samples (or the PNGs in PNG_DIR) against the "
        "data set's test images with its classifier (a folder model's: --judge), beside "
        "the real-data floor; prints a table and a JSON line",
    )
    add(
        "--interpolate",
        type=int,
        metavar="K",
        help="write interpolation.png: K rows of "
        "10 images walking between two random noise vectors, from the latest checkpoint, "
        "then exit",
    )
    add(
        "--digit",
        "--class",
        dest="digit",
        metavar="CLASS",
        help="with --sample: N images of this class, by its index (a digit 0-9 for MNIST) "
        "or its name (a folder's subfolder); with --interpolate: the walks between noise "
        "vectors all draw it. Needs a model trained with --conditional (default: the "
        f"shipped {CONDITIONAL_MODEL_DIR})",
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
        "its test accuracy beside the same on raw pixels (needs --data-dir; MNIST and "
        "Fashion-MNIST models)",
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
        "--judge",
        metavar="FILE",
        help="with --evaluate on a model of a labelled folder: the classifier python -m "
        "trainer.evaluation.classifier --dataset folder trained on that folder (its "
        ".weights.h5), which judges the samples class by class against the images it held "
        "out",
    )
    add(
        "--num-eval-samples",
        type=int,
        metavar="N",
        help="samples --evaluate draws from the checkpoint (default: 10000)",
    )


def attach_negative_values(argv: list) -> list:
    """argv with `--time-budget -5m` written `--time-budget=-5m`, so argparse reads the
    value (and its check names it) instead of taking it for a flag."""
    argv, joined = list(argv), []
    while argv:
        word = argv.pop(0)
        if word == "--time-budget" and argv and argv[0].startswith("-") and argv[0][1:2].isdigit():
            word = f"{word}={argv.pop(0)}"
        joined.append(word)
    return joined


def resolve(args: argparse.Namespace, environ=None) -> TrainConfig:
    """The run's config: flags over defaults; on resume, flags over the saved
    hyperparameters, the folders from flags and defaults (config.json has none).

    Args:
      args: the parsed flags.
      environ: the environment variables (task.py passes os.environ); a folder no flag
        and no --job-dir sets comes from its VERTEX_FOLDERS variable when that is set.

    Raises:
      TrainerError: a sampling mode asks a data set's shipped model that this version
        does not ship, or a resume's checkpoint cannot be read or does not fit the flags.
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
    if any(mode in vars(args) for mode in SAMPLING_MODES):  # the data set's shipped model
        shipped = DATASET_MODEL_DIRS.get(overrides.get("dataset"))
        if shipped and "checkpoint_dir" not in overrides:
            if not os.path.exists(os.path.join(shipped, CONFIG_FILENAME)):
                raise TrainerError(
                    f"no {overrides['dataset']} model ships in {shipped!r} with this "
                    "version; train one with `python -m trainer.task --data-dir DIR "
                    f"--dataset {overrides['dataset']} --checkpoint-dir MODEL_DIR` and "
                    "pass --checkpoint-dir MODEL_DIR"
                )
            overrides["checkpoint_dir"] = shipped
    if "digit" in vars(args):  # only a conditional model draws a chosen digit
        overrides.setdefault("checkpoint_dir", CONDITIONAL_MODEL_DIR)
    if overrides.get("continue_train"):
        saved_dir = overrides.get("checkpoint_dir", DEFAULTS.checkpoint_dir)
        config = resolve_resume(load_saved_config(saved_dir), overrides)
        _check_budget(config, overrides)
        return config
    fresh = defaults(
        bool(overrides.get("conditional")),
        overrides.get("dataset", DEFAULTS.dataset),
        overrides.get("image_size"),
        overrides.get("time_budget"),
    )
    config = dataclasses.replace(fresh, **overrides)
    _check_budget(config, overrides)
    return config


def _check_budget(config: TrainConfig, overrides: dict) -> None:
    """Raises ValueError for a flag that sets the step budget or its decay beside
    --time-budget, which plans both."""
    if not config.time_budget:
        return
    given = [f for f in ("num_epochs", "train_steps", "lr_decay_epochs") if f in overrides]
    if given or config.train_steps:
        names = " and ".join("--" + f.replace("_", "-") for f in given or ["train_steps"])
        raise ValueError(
            f"--time-budget plans the steps and their decay itself, so {names} cannot "
            "apply: drop it (--lr-decay-share sets the share of the steps that decay)"
        )


def class_index(checkpoint_dir: str, asked):
    """--digit/--class as the class index the model in checkpoint_dir draws: the
    position of a class name among the model's, else an index as given; None stays
    None.

    Raises:
      TrainerError: neither one of the model's class names (they are listed) nor a
        number.
    """
    if asked is None:
        return None
    names = load_saved_config(checkpoint_dir).image.class_names
    if asked in names:
        return names.index(asked)
    if asked.lstrip("-").isdigit():
        return int(asked)
    raise TrainerError(
        f"--class {asked!r} is not one of the classes of the model in {checkpoint_dir!r}: "
        + (", ".join(names) if names else "it has none")
    )


def check_dataset(checkpoint_dir: str, dataset: str) -> None:
    """Raises TrainerError unless the model in checkpoint_dir was trained on `dataset`."""
    trained_on = load_saved_config(checkpoint_dir).dataset
    if trained_on != dataset:
        raise TrainerError(
            f"the model in {checkpoint_dir!r} was trained on {trained_on}, not {dataset}; "
            f"drop --dataset, or pass the --checkpoint-dir of a {dataset} model"
        )


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
