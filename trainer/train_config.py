"""The run's configuration, in three parts, each field declared once (trainer.options):

- ModelConfig: what shapes the saved variables, and the batch the step count is
  measured in; a resume must keep it, so resuming checks that this part is equal.
- TrainingConfig: how to train: rates, schedule, loss weights, cadence, precision.
- RunConfig: where to read and write, and whether to resume: the invocation, which
  config.json leaves out, so a checkpoint folder copied elsewhere resumes with that
  machine's folders.

TrainConfig joins the parts (config.batch_size reads as any field does; config.model,
.training and .run give each part alone). Defaults are the values behind the README's
results; tests derive tiny variants with `dataclasses.replace`. config.json holds the
model and training parts, written beside the checkpoints and compared on resume.
"""

import dataclasses
import json
import os
from typing import Optional

from trainer import budget, latent
from trainer.errors import TrainerError
from trainer.image_spec import DATASET_SPECS, MNIST, ImageSpec
from trainer.options import check_fields, option

CONFIG_FILENAME = "config.json"
PRECISIONS = ("auto", "bfloat16", "float32")
ARCHS = ("dcgan", "mlp")
# --strategy's choices (trainer.distribute): a flag of the invocation, not a field.
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
LATENT_DISTRIBUTIONS = latent.DISTRIBUTIONS
MODE_SEEKING_BOUNDS = ("real", "none")
DATASETS = (*DATASET_SPECS, "folder")
IMAGE_SIZES = (32, 64)
DEFAULT_IMAGE_SIZE = 64  # a folder run's, when --image-size is not given
_RATE_HINT = "try the DCGAN paper's 2e-4"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What shapes the saved variables: locked on resume."""

    dataset: str = option(
        "mnist",
        "the images to train on: mnist (handwritten digits) or fashion-mnist (clothing), "
        "from --data-dir or the Keras cache; or folder: every image below --data-dir, one "
        "subfolder per class if you have classes; a checkpoint generates its set's images",
        choices=DATASETS,
        absent="mnist",
    )
    image_size: Optional[int] = option(
        None,
        "with --dataset folder, the side of the square training images: each image is "
        "centre-cropped to a square and resized (default: 64)",
        choices=IMAGE_SIZES,
        optional=True,
        absent=None,
    )
    channels: Optional[int] = option(
        None,
        "with --dataset folder, 1 (grey) or 3 (colour) (default: 1 if every image is grey, else 3)",
        choices=(1, 3),
        optional=True,
        absent=None,
    )
    arch: str = option(
        "dcgan",
        "dcgan: the all-convolutional networks; mlp: the fully connected GAN of the "
        "tutorials (Goodfellow et al. 2014), the baseline, which takes no width or depth",
        choices=ARCHS,
    )
    conditional: bool = option(
        False,
        "train on the images' labels too, so --sample --digit D draws the class asked "
        "for: the generator joins the class's learned embedding to z, the discriminator "
        "sees the class as constant planes beside the image (needs the labels files "
        "beside the images)",
        "bool",
        absent=False,
    )
    projection: bool = option(
        False,
        "with --conditional, the discriminator also reads the class out of its last "
        "features (a projection discriminator, Miyato and Koyama 2018)",
        "bool",
        absent=False,
        metavar="BOOL",
    )
    image: ImageSpec = option(
        MNIST,
        "what the images are (trainer.image_spec): size, channels, classes; set from the "
        "data when it is read, so a checkpoint says what it generates",
        flag=False,
    )
    latent_dim: int = option(100, "length of the noise vector z", "positive")
    latent_distribution: str = option(
        "normal",
        "distribution of z: normal, N(0, 1), or uniform, U(-1, 1) as in the DCGAN paper",
        choices=LATENT_DISTRIBUTIONS,
    )
    # MNIST's networks at 64x64 would cost a folder run about 11.6 times MNIST's FLOPs a
    # trained image; the folder's defaults about 2.7 times (1.2 at 32x32), the DCGAN
    # paper's pattern at half its generator width (docs/performance.md, image sizes).
    generator_width: int = option(
        96,
        "generator channels at its finest hidden resolution (14x14 for MNIST); each "
        "coarser one has twice as many",
        "positive",
        folder={32: 64, 64: 64},
    )
    discriminator_width: int = option(
        64,
        "discriminator channels at its finest hidden resolution; each coarser one has "
        "twice as many",
        "positive",
        folder={32: 64, 64: 64},
    )
    generator_depth: int = option(
        1,
        "3x3 convolutions added at each of the generator's hidden resolutions "
        "(docs/results.md: what depth bought)",
        "non_negative",
        absent=0,
        folder={32: 1, 64: 0},
    )
    discriminator_depth: int = option(
        2,
        "3x3 convolutions added at each of the discriminator's hidden resolutions: a "
        "stronger judge of stroke detail",
        "non_negative",
        absent=0,
        folder={32: 1, 64: 0},
    )
    batch_size: int = option(
        64,
        "images per step for both networks; a resume keeps it, since the position in "
        "the epoch counts its batches (DCGAN paper: 128; 64 reached a given quality "
        "sooner on a CPU)",
        "positive",
    )

    def __post_init__(self):
        _check_model(self)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How to train: changeable on resume."""

    time_budget: Optional[str] = option(
        None,
        "train for this long (90s, 20m, 1.5h), start-up and the final checkpoint "
        "included: the run measures its pace, plans its steps to end by then with its "
        "learning-rate decay completed, and re-plans if the pace changes; on resume, "
        "what is left of it (a new value sets a new total)",
        "duration",
        optional=True,
        metavar="DURATION",
    )
    num_epochs: int = option(
        40,
        "passes over the training images; ignored when --train-steps is set",
        "positive",
        conditional=14,
    )
    train_steps: Optional[int] = option(
        None, "total optimizer steps; overrides --num-epochs", "positive", optional=True
    )
    learning_rate: float = option(
        1e-3,
        "the generator's Adam learning rate, and the discriminator's unless "
        "--d-learning-rate is set; five times the DCGAN paper's, with the "
        "discriminator at 2e-4 (two time-scales, Heusel et al. 2017)",
        "positive_number",
        hint=_RATE_HINT,
    )
    d_learning_rate: Optional[float] = option(
        2e-4,
        "the discriminator's Adam learning rate (DCGAN paper: 2e-4)",
        "positive_number",
        optional=True,
        hint=_RATE_HINT,
    )
    lr_decay_epochs: int = option(
        10,
        "both learning rates fall linearly to zero over the last N epochs of the budget "
        "(all of a shorter run; 0 keeps them constant), the pix2pix recipe",
        "non_negative",
        conditional=12,
        absent=0,
        metavar="N",
    )
    lr_decay_share: float = option(
        0.4,
        "with --time-budget, both learning rates fall linearly to zero over this share "
        "of the planned steps",
        "fraction",
    )
    beta1: float = option(
        0.5,
        "Adam beta1 (DCGAN paper: 0.5; 0.9 made training oscillate)",
        "fraction",
        hint="try the DCGAN paper's 0.5",
    )
    # Fashion-MNIST's finer detail (straps, prints) needs a sharper discriminator than
    # MNIST's strokes (docs/results.md, Fashion-MNIST with a weaker R1 penalty).
    r1_gamma: float = option(
        1.0,
        "weight of the R1 gradient penalty on real images (Mescheder et al. 2018); 0 off",
        "non_negative_number",
        hint="0 turns it off",
        dataset={"fashion-mnist": 0.1},
    )
    r1_interval: int = option(
        16,
        "steps between R1 penalties, each weighted by as many (lazy regularization, "
        "Karras et al. 2020)",
        "positive",
    )
    mode_seeking: float = option(
        0.0,
        "weight of the mode-seeking term (MSGAN, Mao et al. 2019), which rewards "
        "different images from different noise for the same class; 0 off",
        "non_negative_number",
        hint="0 turns it off",
        conditional=1.0,
        absent=0.0,
    )
    mode_seeking_bound: str = option(
        "none",
        "real: a pair's images count as different only up to how much two real images "
        "of their class differ, so no class varies more than real ones; none: uncapped",
        choices=MODE_SEEKING_BOUNDS,
        conditional="real",
        absent="none",
    )
    mismatch: float = option(
        0.0,
        "with --conditional, weight of the mismatched-class term (Reed et al. 2016): the "
        "discriminator also learns that real images with a wrong class are fake; 0 off",
        "non_negative_number",
        hint="0 turns it off",
        conditional=0.15,
        absent=0.0,
    )
    label_smoothing: float = option(
        0.0,
        "real images' target is 1 minus this (one-sided label smoothing, Salimans et al. "
        "2016); 0 is plain cross-entropy",
        "fraction",
        hint="0 is off, 0.1 is typical",
    )
    precision: str = option(
        "auto",
        "auto: bfloat16 where the hardware computes it natively (AVX512-BF16 or AMX "
        "CPUs, GPUs of compute capability 8.0+), float32 elsewhere; bfloat16: mixed "
        "precision with float32 weights; float32",
        choices=PRECISIONS,
    )
    resolved_precision: Optional[str] = option(
        None,
        "what --precision resolved to on the machine that last ran (None: unresolved, "
        "and auto computes in float32)",
        choices=("bfloat16", "float32"),
        optional=True,
        absent=None,
        flag=False,
    )
    xla: bool = option(
        False,
        "compile the train step with XLA; faster on some CPUs, slower on others: "
        "measure yours with python -m trainer.tools.bench --variants",
        "bool",
    )
    ema_decay: float = option(
        0.999,
        "decay of the generator's weight average that sampling draws from (Karras et "
        "al. 2018); 0 off",
        "fraction",
        hint="0 turns the average off, 0.999 is typical",
    )
    eval_samples: int = option(
        2000,
        "samples judged at each epoch end for the Frechet distance and classifier score "
        "in TensorBoard; 0 off",
        "eval_samples",
    )
    seed: int = option(0, "seed of the weights, the noise and the shuffle", "non_negative")
    deterministic: bool = option(
        False, "op determinism: bit-identical reruns and resumes, somewhat slower", "bool"
    )
    log_freq: int = option(100, "steps between log lines and scalar summaries", "positive")
    checkpoint_freq: int = option(
        1000, "steps between checkpoints, besides each epoch end and the end", "positive"
    )
    mirror: bool = option(
        False,
        "each epoch also trains on every image flipped left to right (StyleGAN2-ADA's "
        "--mirror): twice the images, for sets whose mirror images are as real",
        "bool",
        absent=False,
    )

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Where to read and write, and whether to resume: never saved."""

    data_dir: Optional[str] = option(
        None,
        "folder with the data set's four IDX files (.gz or raw), or MNIST's mnist.npz "
        "(default: the Keras cache, ~/.keras/datasets, downloaded if missing)",
        "text",
        optional=True,
    )
    checkpoint_dir: str = option(
        "MNIST-trained-model",
        "checkpoints and config.json; the repository ships a trained model in the default",
        "text",
    )
    log_dir: str = option("trainer/summary", "TensorBoard event files", "text")
    sample_dir: str = option("trainer/samples", "PNGs of --sample and --interpolate", "text")
    model_dir: Optional[str] = option(
        None,
        "where a finished run publishes its model (Vertex AI's AIP_MODEL_DIR)",
        "text",
        optional=True,
        flag=False,
    )
    continue_train: bool = option(
        False, "resume the run in --checkpoint-dir at its exact step", "bool", metavar="BOOL"
    )
    overwrite: bool = option(
        False,
        "let a fresh run delete the checkpoints already in --checkpoint-dir; with "
        "--export, replace an export of the same step",
        "bool",
    )

    def __post_init__(self):
        check_fields(self)


@dataclasses.dataclass(frozen=True)
class TrainConfig(RunConfig, TrainingConfig, ModelConfig):
    """Everything one training run needs, the three parts joined; immutable."""

    def __post_init__(self):
        _check_model(self)  # every field's check, then the model's rules
        if self.mismatch > 0 and not self.conditional:
            raise ValueError(
                f"mismatch ({self.mismatch}) weighs wrong classes, so it needs "
                "--conditional; add it or drop --mismatch"
            )

    @property
    def model(self) -> ModelConfig:
        return _part(ModelConfig, self)

    @property
    def training(self) -> TrainingConfig:
        return _part(TrainingConfig, self)

    @property
    def run(self) -> RunConfig:
        return _part(RunConfig, self)

    @property
    def compute_precision(self) -> str:
        """What the networks compute in: "bfloat16" or "float32"."""
        if self.resolved_precision:
            return self.resolved_precision
        return "float32" if self.precision == "auto" else self.precision

    @property
    def num_classes(self) -> int:
        """Classes the networks are conditioned on: the images', or 0 for an
        unconditional run."""
        return self.image.num_classes if self.conditional else 0

    @property
    def discriminator_learning_rate(self) -> float:
        return self.d_learning_rate or self.learning_rate

    def to_json(self) -> str:
        """config.json: {"model": the model part, "training": the training part}."""
        values = {
            "model": {**_values(self.model), "image": self.image.to_dict()},
            "training": _values(self.training),
        }
        return json.dumps(values, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        """Parses `to_json` output, or the flat object earlier versions wrote (whose
        missing fields take their options' `absent` values, and whose folders are
        ignored); raises ValueError on unknown fields or bad values."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError("config JSON must be an object")
        if set(values) <= {"model", "training"}:
            values = {**values.get("model", {}), **values.get("training", {})}
        else:  # an earlier, flat config.json: it may hold folders, which no run inherits
            values = {k: v for k, v in values.items() if k not in ENVIRONMENT_FIELDS}
        values = {**ADDED_FIELDS, **values}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown config fields {unknown}")
        return cls(**values)


def _check_model(config) -> None:
    """Checks every field of `config` (a ModelConfig, or a TrainConfig and so all its
    parts) and then the rules between the model's fields; reads the image spec back
    from the object config.json holds."""
    object.__setattr__(config, "image", ImageSpec.from_dict(config.image))
    check_fields(config)
    if config.projection and not config.conditional:
        raise ValueError(
            "projection reads the class out of the discriminator, so it needs "
            "--conditional; add it or drop --projection"
        )
    if config.conditional and config.arch != "dcgan":
        raise ValueError(
            f"conditional needs the dcgan networks, got arch {config.arch!r}; drop --arch "
            "or --conditional"
        )
    for name in ("image_size", "channels"):
        if getattr(config, name) is not None and config.dataset != "folder":
            raise ValueError(
                f"{name} applies to --dataset folder; {config.dataset}'s images are "
                f"{config.image.height}x{config.image.width}x{config.image.channels}: drop "
                f"--{name.replace('_', '-')}"
            )
    if config.conditional and config.image.num_classes < 2:
        raise ValueError(
            f"conditional needs images of two classes or more, got "
            f"{config.image.num_classes}; drop --conditional"
        )


def _values(config, part=None) -> dict:
    """field -> value of `part`'s fields (all of `config`'s when None), shallow."""
    names = [f.name for f in dataclasses.fields(part or config)]
    return {name: getattr(config, name) for name in names}


def _part(part, config):
    return part(**_values(config, part))


def _fields_with(part, key) -> dict:
    return {f.name: f.metadata[key] for f in dataclasses.fields(part) if key in f.metadata}


# What earlier config.json files lacked, with the value that rebuilds their runs.
ADDED_FIELDS = {**_fields_with(ModelConfig, "absent"), **_fields_with(TrainingConfig, "absent")}
# What a conditional run changes of the defaults (docs/results.md, the conditional model).
CONDITIONAL_DEFAULTS = _fields_with(TrainingConfig, "conditional")
ENVIRONMENT_FIELDS = tuple(f.name for f in dataclasses.fields(RunConfig))
RESUME_LOCKED_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))


# What a run on each data set changes of the defaults.
DATASET_DEFAULTS = {
    name: {f: v[name] for f, v in _fields_with(TrainingConfig, "dataset").items() if name in v}
    for name in DATASETS
}

# What a folder run of each image size changes of the defaults.
FOLDER_DEFAULTS = {
    size: {name: sizes[size] for name, sizes in _fields_with(ModelConfig, "folder").items()}
    for size in IMAGE_SIZES
}


# --time-budget's recipes (docs/results.md, "Recipes for a time budget"): for each data
# set (a folder: for each image size, as its networks differ), from the shortest budget
# up, the budget a recipe was tuned for and what it changes of the defaults. A budget
# takes the first recipe at least as long as itself, or the last. Tuned for
# unconditional runs on a 2-core AVX2 CPU in float32; a faster machine trains the same
# recipe for more steps.
_NARROW = {"generator_width": 48, "discriminator_width": 32, "batch_size": 32}
BUDGET_RECIPES = {
    "mnist": ((600, _NARROW),),
    "fashion-mnist": ((300, _NARROW),),
    "folder-64": ((600, _NARROW),),
}


def recipe_key(dataset: str, image_size=None) -> str:
    """A run's key in BUDGET_RECIPES: its data set, and a folder's image size."""
    if dataset != "folder":
        return dataset
    return f"folder-{image_size or DEFAULT_IMAGE_SIZE}"


def budget_recipe(dataset: str, time_budget, conditional: bool = False, image_size=None):
    """The recipe --time-budget `time_budget` uses on `dataset` (a folder: of
    `image_size`): (the budget it was tuned for, in seconds; field -> value), or None
    where none was measured (a conditional run's, or a data set's without recipes)."""
    recipes = BUDGET_RECIPES.get(recipe_key(dataset, image_size))
    if not recipes or conditional or not time_budget:
        return None
    try:
        seconds = budget.parse_duration(time_budget)
    except ValueError:
        return None  # not a duration: the field's own check says so, as a usage error
    return next((r for r in recipes if r[0] >= seconds), recipes[-1])


def defaults(
    conditional: bool = False, dataset: str = "mnist", image_size=None, time_budget=None
) -> TrainConfig:
    """A fresh run's defaults: TrainConfig(), for a conditional run CONDITIONAL_DEFAULTS
    over them, its data set's DATASET_DEFAULTS, for a folder run FOLDER_DEFAULTS of its
    image size (None: 64), and with a time budget its BUDGET_RECIPES entry."""
    changes = dict(CONDITIONAL_DEFAULTS, conditional=True) if conditional else {}
    changes.update(DATASET_DEFAULTS.get(dataset, {}))  # a bad name: the field's check says so
    if dataset == "folder":
        changes.update(FOLDER_DEFAULTS[image_size or DEFAULT_IMAGE_SIZE])
    recipe = budget_recipe(dataset, time_budget, conditional, image_size)
    if recipe:
        changes.update(recipe[1])
    return TrainConfig(**changes)


def save_config(config: TrainConfig, directory: str) -> str:
    """Writes config.json into `directory` (local, gs:// or ram://) atomically; returns
    its path.

    Raises:
      OSError or tf.errors.OpError: the file cannot be written.
    """
    from trainer import paths  # loads TensorFlow: here, so --help answers without it

    path = os.path.join(directory, CONFIG_FILENAME)
    paths.write_atomically(path, (config.to_json() + "\n").encode("utf-8"))
    return path


def load_saved_config(directory: str) -> TrainConfig:
    """Reads the config.json a run saved beside its checkpoints.

    Raises:
      TrainerError: the file is missing or is not a config this version can read.
    """
    import tensorflow as tf  # here, so the flags parse and --help answer without it

    from trainer import paths

    path = os.path.join(directory, CONFIG_FILENAME)
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            raw = f.read()
    except tf.errors.NotFoundError as err:
        raise TrainerError(
            f"no {CONFIG_FILENAME} in {directory!r}: it is not a checkpoint folder of this "
            "trainer; train one with `python -m trainer.task --data-dir DIR` or pass "
            "--checkpoint-dir"
        ) from err
    except (OSError, tf.errors.OpError) as err:
        raise TrainerError(
            f"cannot read {path} ({paths.reason(err)}); pass "
            "--checkpoint-dir with a folder you can read"
        ) from err
    try:
        return TrainConfig.from_json(raw.decode("utf-8"))
    except (ValueError, TypeError) as err:
        raise TrainerError(
            f"{path} is not a valid trainer config ({err}); "
            "point --checkpoint-dir at a folder this trainer wrote"
        ) from err


def resolve_resume(saved: TrainConfig, overrides: dict) -> TrainConfig:
    """The config of a resumed run: the saved one, with the flags the user gave on top.

    Args:
      saved: config.json of the run being resumed (its ENVIRONMENT_FIELDS are the
        defaults: load_saved_config does not read them).
      overrides: field -> value for each flag given on the command line.

    Raises:
      TrainerError: a flag changes a field in RESUME_LOCKED_FIELDS.
    """
    check_resumable(saved, overrides)
    return dataclasses.replace(saved, **overrides)


def check_resumable(saved: TrainConfig, values) -> None:
    """Raises TrainerError unless the model part of `values` (a TrainConfig, or field ->
    value, possibly partial) equals the saved config's, naming each field that differs."""
    if isinstance(values, TrainConfig):
        values = _values(values)
    wanted = dataclasses.replace(
        saved.model, **{name: values[name] for name in RESUME_LOCKED_FIELDS if name in values}
    )
    differing = [
        f"{name} (checkpoint {getattr(saved, name)}, flags {getattr(wanted, name)})"
        for name in RESUME_LOCKED_FIELDS
        if getattr(wanted, name) != getattr(saved, name)
    ]
    if differing:
        raise TrainerError(
            "cannot resume: the flags differ from the checkpoint's architecture in "
            + ", ".join(differing)
            + "; drop those flags, or start a fresh run with another --checkpoint-dir"
        )
