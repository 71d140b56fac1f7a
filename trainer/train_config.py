"""The one frozen training configuration: fields, validation and JSON round trip.

Defaults are the values behind the README's results. Tests derive tiny variants with
`dataclasses.replace`. The resolved config, less its ENVIRONMENT_FIELDS, is written
beside the checkpoints as `config.json` and compared with the flags on resume.
"""

import dataclasses
import json
import os
from typing import Optional

from trainer import latent
from trainer.errors import TrainerError
from trainer.image_spec import MNIST, ImageSpec

CONFIG_FILENAME = "config.json"
PRECISIONS = ("auto", "bfloat16", "float32")
ARCHS = ("dcgan", "mlp")
# --strategy's choices (trainer.distribute): a flag of the invocation, not a field.
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
LATENT_DISTRIBUTIONS = latent.DISTRIBUTIONS
MODE_SEEKING_BOUNDS = ("real", "none")

# Fields added after some config.json files were written, with the value that rebuilds
# the runs that wrote them (their networks had no extra layers, their rates no decay).
ADDED_FIELDS = {
    "generator_depth": 0,
    "discriminator_depth": 0,
    "lr_decay_epochs": 0,
    "resolved_precision": None,
    "conditional": False,
    "mode_seeking": 0.0,
    "mismatch": 0.0,
    "mode_seeking_bound": "none",
    "projection": False,
    "image": MNIST,
}

# Fields of the machine and the invocation, not of the run: config.json leaves them out
# (and ignores them in files written before), so a checkpoint folder copied elsewhere
# resumes with that machine's flags and defaults, as a fresh run there would.
ENVIRONMENT_FIELDS = (
    "data_dir",
    "checkpoint_dir",
    "log_dir",
    "sample_dir",
    "model_dir",
    "continue_train",
    "overwrite",
)

# Fields that shape the saved variables or the step bookkeeping: a resume must keep them.
RESUME_LOCKED_FIELDS = (
    "arch",
    "conditional",
    "projection",
    "latent_dim",
    "latent_distribution",
    "generator_width",
    "discriminator_width",
    "generator_depth",
    "discriminator_depth",
    "batch_size",
    "image",
)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; immutable once built."""

    # Folder with the MNIST IDX files or mnist.npz; None uses ~/.keras/datasets/mnist.npz.
    data_dir: Optional[str] = None
    # Where checkpoints and config.json go; the repo ships a trained model here.
    checkpoint_dir: str = "MNIST-trained-model"
    # TensorBoard event files.
    log_dir: str = "trainer/summary"
    # PNGs written by --sample.
    sample_dir: str = "trainer/samples"
    # Where the finished run's model is published (Vertex AI's AIP_MODEL_DIR); None
    # publishes nothing.
    model_dir: Optional[str] = None
    # Restore the latest checkpoint and continue toward the same step budget.
    continue_train: bool = False
    # Allow a fresh run to replace the checkpoints already in checkpoint_dir.
    overwrite: bool = False
    # Passes over the 60,000 training images; ignored when train_steps is set.
    num_epochs: int = 40
    # Total optimizer steps; overrides num_epochs when set.
    train_steps: Optional[int] = None
    # Images per step, for both networks (DCGAN paper: 128; 64 reached a given quality
    # sooner on a CPU, docs/results.md).
    batch_size: int = 64
    # Adam learning rate of the generator, and of the discriminator unless
    # d_learning_rate is set. Five times the DCGAN paper's 2e-4: with the discriminator
    # at 2e-4 it halved the epochs to a given quality (docs/results.md).
    learning_rate: float = 1e-3
    # Adam learning rate of the discriminator (DCGAN paper, Radford et al. 2015: 2e-4);
    # None uses learning_rate. Apart from the generator's: two time-scales (Heusel et
    # al. 2017).
    d_learning_rate: Optional[float] = 2e-4
    # Both learning rates fall linearly to zero over this many last epochs of the budget
    # (the whole run if it is shorter; 0 keeps them constant). Annealing settles the
    # generator onto sharper digits (the pix2pix/CycleGAN recipe: constant, then linear
    # decay to zero; docs/results.md).
    lr_decay_epochs: int = 10
    # Adam beta1 (DCGAN paper: 0.5; the default 0.9 made training oscillate).
    beta1: float = 0.5
    # "dcgan": the all-convolutional nets; "mlp": the fully connected GAN of the
    # tutorials (Goodfellow et al. 2014), the baseline; the width fields do not apply.
    arch: str = "dcgan"
    # Train on the digits' labels too: the generator draws the digit it is given
    # (its learned embedding joined to z) and the discriminator judges image and digit
    # together (the digit as constant planes beside the image). dcgan only;
    # CONDITIONAL_DEFAULTS changes some defaults.
    conditional: bool = False
    # With conditional, the discriminator also reads the digit out of its last features
    # (a projection discriminator, Miyato and Koyama 2018) beside the digit's planes at
    # its input.
    projection: bool = False
    # What the run's images are (trainer.image_spec): their size, channels and classes.
    # The data sets it; config.json records it, so a checkpoint says what it generates.
    image: ImageSpec = MNIST
    # Length of the standard-normal noise vector z.
    latent_dim: int = 100
    # Distribution of z: "normal", N(0, 1), or "uniform", U(-1, 1) as in the DCGAN paper.
    latent_distribution: str = "normal"
    # Channels of the generator's last hidden layer; the 7x7 layer has twice as many.
    generator_width: int = 96
    # Channels of the discriminator's first layer; the 7x7 layer has twice as many.
    discriminator_width: int = 64
    # 3x3 convolutions added at each of the generator's hidden resolutions (7x7, 14x14).
    # One, with the deeper discriminator, reached in 3 epochs the Frechet distance the
    # plain nets had not reached in 51 (docs/results.md).
    generator_depth: int = 1
    # 3x3 convolutions added at each of the discriminator's hidden resolutions (14x14,
    # 7x7): a stronger judge of stroke detail, the largest gain measured (docs/results.md).
    discriminator_depth: int = 2
    # R1 gradient penalty on real images (Mescheder et al. 2018); 0 turns it off.
    r1_gamma: float = 1.0
    # Steps between R1 penalties, each weighted by this many (lazy regularization,
    # Karras et al. 2020): nearly the same effect for a fraction of the cost.
    r1_interval: int = 16
    # Weight of the mode-seeking term in the generator's loss (Mao et al. 2019): each
    # step also draws the batch's digits from a second noise batch and rewards images
    # that differ as the noise does; 0 turns it off (and the second draw with it).
    mode_seeking: float = 0.0
    # "real": a pair's image distance counts toward the mode-seeking term only up to
    # how much two real images of its digit differ on average (measured on the training
    # images at the start of each run), so no digit is pushed to vary more than real
    # ones do; "none": uncapped, as MSGAN has it. CONDITIONAL_DEFAULTS sets "real".
    mode_seeking_bound: str = "none"
    # Weight of the mismatched-digit term in the discriminator's loss (the
    # matching-aware discriminator of Reed et al. 2016): each step the discriminator
    # also sees the real images with a wrong digit and learns to call them fake, so it
    # judges whether image and digit agree, not only whether the image is real.
    # Conditional runs only; 0 turns it off. CONDITIONAL_DEFAULTS sets 0.15.
    mismatch: float = 0.0
    # Target for real images in the discriminator's loss is 1 - this (one-sided label
    # smoothing, Salimans et al. 2016); 0 is plain cross-entropy.
    label_smoothing: float = 0.0
    # Arithmetic of the networks, as asked: "bfloat16" computes in bfloat16 with float32
    # weights (mixed precision), "float32" throughout, "auto" bfloat16 only where the
    # hardware computes it natively (AVX512-BF16 or AMX CPUs, GPUs of compute capability
    # 8.0+): elsewhere bfloat16 training ran about 10x slower than float32.
    precision: str = "auto"
    # What `precision` resolved to on the machine that last ran (trainer.hardware sets
    # it at start-up; None: not resolved, and "auto" computes in float32).
    resolved_precision: Optional[str] = None
    # Compile the train step with XLA (jit_compile): half the speed of TensorFlow's
    # oneDNN kernels on an AMX Xeon, 1.17x on a 2-core AVX2 EPYC (docs/performance.md).
    xla: bool = False
    # Decay of the generator's weight average used for sampling (Karras et al. 2018);
    # 0 samples from the raw generator.
    ema_decay: float = 0.999
    # Samples judged by the MNIST classifier at each epoch end for TensorBoard's Frechet
    # distance and classifier score; 0 turns it off.
    eval_samples: int = 2000
    # Seed for weights, noise and the per-epoch shuffle.
    seed: int = 0
    # Op determinism: bit-identical results for the same seed, a little slower.
    deterministic: bool = False
    # Steps between scalar summaries and log lines.
    log_freq: int = 100
    # Steps between checkpoints; one is also written at each epoch end and at the end.
    checkpoint_freq: int = 1000

    def __post_init__(self):
        # config.json holds the spec as an object: read it back as one.
        object.__setattr__(self, "image", ImageSpec.from_dict(self.image))
        if self.conditional and self.image.num_classes < 2:
            raise ValueError(
                f"conditional needs images of two classes or more, got "
                f"{self.image.num_classes}; drop --conditional"
            )
        for name in (
            "num_epochs",
            "batch_size",
            "latent_dim",
            "generator_width",
            "discriminator_width",
            "r1_interval",
            "log_freq",
            "checkpoint_freq",
        ):
            _require_positive(name, getattr(self, name))
        if self.train_steps is not None:
            _require_positive("train_steps", self.train_steps)
        for name in ("lr_decay_epochs", "generator_depth", "discriminator_depth"):
            _require_non_negative(name, getattr(self, name))
        for name in (
            "learning_rate",
            "beta1",
            "r1_gamma",
            "ema_decay",
            "label_smoothing",
            "mode_seeking",
            "mismatch",
        ):
            _require_number(name, getattr(self, name))
        if self.d_learning_rate is not None:
            _require_number("d_learning_rate", self.d_learning_rate)
        for name in ("learning_rate", "d_learning_rate"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}; try the DCGAN paper's 2e-4")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(
                f"label_smoothing must be in [0, 1), got "
                f"{self.label_smoothing}; 0 is off, 0.1 is typical"
            )
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if not isinstance(self.conditional, bool):
            raise ValueError(f"conditional must be true or false, got {self.conditional!r}")
        if not isinstance(self.projection, bool):
            raise ValueError(f"projection must be true or false, got {self.projection!r}")
        if self.projection and not self.conditional:
            raise ValueError(
                "projection reads the digit out of the discriminator, so it "
                "needs --conditional; add it or drop --projection"
            )
        if self.conditional and self.arch != "dcgan":
            raise ValueError(
                f"conditional needs the dcgan networks, got arch "
                f"{self.arch!r}; drop --arch or --conditional"
            )
        latent.check_distribution(self.latent_distribution)
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.resolved_precision not in (None, "bfloat16", "float32"):
            raise ValueError(
                f"resolved_precision must be bfloat16 or float32, got {self.resolved_precision!r}"
            )
        if not 0 <= self.beta1 < 1:
            raise ValueError(
                f"beta1 must be in [0, 1), got {self.beta1}; try the DCGAN paper's 0.5"
            )
        if (
            isinstance(self.eval_samples, bool)
            or not isinstance(self.eval_samples, int)
            or self.eval_samples < 0
            or 0 < self.eval_samples < 10
        ):
            raise ValueError(
                f"eval_samples must be 0 (off) or at least 10, got {self.eval_samples!r}"
            )
        if not self.r1_gamma >= 0:
            raise ValueError(f"r1_gamma must be >= 0, got {self.r1_gamma}; 0 turns it off")
        if not self.mode_seeking >= 0:
            raise ValueError(f"mode_seeking must be >= 0, got {self.mode_seeking}; 0 turns it off")
        if self.mode_seeking_bound not in MODE_SEEKING_BOUNDS:
            raise ValueError(
                f"mode_seeking_bound must be one of "
                f"{', '.join(MODE_SEEKING_BOUNDS)}, got "
                f"{self.mode_seeking_bound!r}"
            )
        if not self.mismatch >= 0:
            raise ValueError(f"mismatch must be >= 0, got {self.mismatch}; 0 turns it off")
        if self.mismatch > 0 and not self.conditional:
            raise ValueError(
                f"mismatch ({self.mismatch}) weighs wrong digits, so it needs "
                "--conditional; add it or drop --mismatch"
            )
        if not 0 <= self.ema_decay < 1:
            raise ValueError(
                f"ema_decay must be in [0, 1), got {self.ema_decay}; "
                "0 turns the average off, 0.999 is typical"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

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
        """The hyperparameters and run settings: every field but ENVIRONMENT_FIELDS."""
        values = {
            name: value
            for name, value in dataclasses.asdict(self).items()
            if name not in ENVIRONMENT_FIELDS
        }
        return json.dumps(values, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        """Parses `to_json` output, this version's or an earlier one's (its missing
        fields take ADDED_FIELDS' values, its ENVIRONMENT_FIELDS are ignored and take
        the defaults); raises ValueError on unknown fields or bad values."""
        values = json.loads(text)
        if not isinstance(values, dict):
            raise ValueError("config JSON must be an object")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown config fields {unknown}")
        return cls(
            **{
                **ADDED_FIELDS,
                **{name: value for name, value in values.items() if name not in ENVIRONMENT_FIELDS},
            }
        )


# What a conditional run changes of the defaults: 14 epochs, the last 12 decaying; the
# mode-seeking term at the MSGAN paper's weight 1, capped at real digits' spread; and
# the mismatched-digit term at 0.15, which took every digit to 99% labelled as asked
# (docs/results.md). Without the mode-seeking term the generator drew each digit ever
# more alike while its discriminator sat at chance (loss near 2 ln 2): the probe's
# Frechet distance rose from 5.99 after epoch 2 to 7.15 after epoch 7; with it, 5.26
# after epoch 2 and 2.47 after epoch 4.
CONDITIONAL_DEFAULTS = {
    "num_epochs": 14,
    "lr_decay_epochs": 12,
    "mode_seeking": 1.0,
    "mode_seeking_bound": "real",
    "mismatch": 0.15,
}


def defaults(conditional: bool = False) -> TrainConfig:
    """A fresh run's defaults: TrainConfig(), and for a conditional run
    CONDITIONAL_DEFAULTS over them."""
    if conditional:
        return TrainConfig(conditional=True, **CONDITIONAL_DEFAULTS)
    return TrainConfig()


def _require_number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")


def _require_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _require_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


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
    """Raises TrainerError naming each RESUME_LOCKED_FIELDS entry where `values` (a
    TrainConfig, or field -> value, possibly partial) differs from the saved config."""
    if isinstance(values, TrainConfig):
        values = {field.name: getattr(values, field.name) for field in dataclasses.fields(values)}
    if "image" in values:
        values = {**values, "image": ImageSpec.from_dict(values["image"])}
    differing = [
        f"{name} (checkpoint {getattr(saved, name)}, flags {values[name]})"
        for name in RESUME_LOCKED_FIELDS
        if name in values and values[name] != getattr(saved, name)
    ]
    if differing:
        raise TrainerError(
            "cannot resume: the flags differ from the checkpoint's architecture in "
            + ", ".join(differing)
            + "; drop those flags, or start a fresh run with another --checkpoint-dir"
        )
