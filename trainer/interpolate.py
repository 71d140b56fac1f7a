"""--interpolate K: latent walks, K rows of STEPS digits between two random noise vectors.

Each walk starts and ends at z drawn from the checkpoint's latent distribution and moves
in STEPS even steps, endpoints included, linearly or along the great circle (slerp). A
smooth row of digits says the generator maps nearby z to nearby digits rather than
memorizing isolated points.

interpolation.png tiles the walks, one per row, left to right. interpolation.gif plays
them: frame t is the t-th digit of every walk at once, walk i in the i-th cell of a near-
square grid read row by row, so all K walks morph together; the endpoints linger so the
loop's jump from the last step back to the first reads as a restart.

A conditional model's walks between noise vectors keep one digit each (walk k draws
digit k mod 10, or --digit's), and it also writes interpolation_digits.png (and .gif):
K walks at a fixed z from one digit to another, the one-hot labels mixed linearly, which
mixes the digits' learned embeddings that the generator joins to z (trainer.model): the
handwriting held, the digit changing.
"""

import math
import os

import numpy as np

from trainer import animation, generation, latent, loaders, model, sample
from trainer import images as image_utils
from trainer.image_spec import MNIST
from trainer.paths import ensure_writable_dir

STEPS = 10  # images per walk, both endpoints included
# Files written (.png, and .gif with --gif): the walks between noise vectors, and a
# conditional model's walks between digits.
WALKS_NAME, DIGITS_NAME = "interpolation", "interpolation_digits"
STEP_MS, ENDPOINT_MS = 150, 800  # GIF frame durations
# Above this |cos(angle)| the two points are nearly parallel (or opposite): sin(angle)
# nears 0 and slerp's division loses precision, while the arc is nearly a straight line.
PARALLEL_COSINE = 0.9995


def lerp(a, b, t):
    """Linear interpolation (1 - t) a + t b.

    Args:
      a, b: float (..., D) endpoints, the same shape.
      t: float (T,) fractions in [0, 1]; 0 gives a, 1 gives b.

    Returns:
      float (..., T, D): for each pair of rows of a and b, its T points.
    """
    a, b, t = _broadcast(a, b, t)
    return (1.0 - t) * a + t * b


def slerp(a, b, t):
    """Spherical interpolation (Shoemake 1985, "Animating Rotation with Quaternion Curves"):

        sin((1 - t) w) / sin(w) a + sin(t w) / sin(w) b,  w the angle between a and b.

    For endpoints of equal norm every point keeps that norm, where lerp's midpoint of two
    independent high-dimensional normal z is ~1/sqrt(2) as long, a z the generator rarely
    saw in training. Pairs within PARALLEL_COSINE of parallel or opposite use lerp.

    Args:
      a, b: float (..., D) endpoints, the same shape, non-zero rows.
      t: float (T,) fractions in [0, 1]; 0 gives a, 1 gives b.

    Returns:
      float64 (..., T, D), as lerp.
    """
    a, b, t = _broadcast(a, b, t)
    norms = np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(b, axis=-1, keepdims=True)
    cosine = np.clip(np.sum(a * b, axis=-1, keepdims=True) / np.maximum(norms, 1e-30), -1.0, 1.0)
    straight = np.abs(cosine) > PARALLEL_COSINE
    omega = np.arccos(cosine)
    sin_omega = np.where(straight, 1.0, np.sin(omega))  # unused where straight
    arc = (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / sin_omega
    return np.where(straight, (1.0 - t) * a + t * b, arc)


def _broadcast(a, b, t):
    """a, b (..., D) -> float64 (..., 1, D); t (T,) -> float64 (T, 1)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim < 1:
        raise ValueError(
            f"a and b must be arrays of the same shape (..., D), got {a.shape} and {b.shape}"
        )
    t = np.asarray(t, np.float64).reshape(-1, 1)
    return a[..., None, :], b[..., None, :], t


def endpoints(count: int, latent_dim: int, seed: int, distribution: str = "normal"):
    """The walks' start and end z: two float32 (count, latent_dim) arrays from one
    NumPy generator seeded with `seed` (starts drawn first)."""
    rng = np.random.default_rng(seed)
    starts = latent.draw(rng, count, latent_dim, distribution)
    return starts, latent.draw(rng, count, latent_dim, distribution)


def walks(starts, ends, spherical: bool = False, steps: int = STEPS) -> np.ndarray:
    """float32 (K, steps, D) evenly spaced points from starts[k] to ends[k] (both kept)."""
    fractions = np.linspace(0.0, 1.0, steps)
    return (slerp if spherical else lerp)(starts, ends, fractions).astype(np.float32)


def render(generator, z, labels=None) -> np.ndarray:
    """z float32 (K, T, D), and for a conditional generator labels float32
    (K, T, num_classes) -> uint8 (K, T, H, W[, C]) images (images.to_uint8)."""
    rows = [array.reshape(-1, array.shape[-1]) for array in (z, labels) if array is not None]
    pixels = image_utils.in_batches(
        lambda *batch: image_utils.to_uint8(generator(model.inputs(*batch), training=False)),
        *rows,
    )
    return pixels.reshape(z.shape[:2] + pixels.shape[1:])


def walk_digits(count: int, seed: int, digit: int = None, classes: int = MNIST.num_classes):
    """The classes of a conditional model's walks: int (count,) for the walks between
    noise vectors (k mod classes, or all `digit`), and (starts, ends) int (count,) pairs
    of different classes for the walks between classes (random by `seed`; all starting
    at `digit` when given)."""
    fixed = np.full(count, digit) if digit is not None else np.arange(count) % classes
    rng = np.random.default_rng([seed, 1])  # apart from the noise's generator
    starts = fixed if digit is not None else rng.integers(0, classes, count)
    ends = (starts + rng.integers(1, classes, count)) % classes  # never the start
    return fixed, (starts, ends)


def write_walks(
    checkpoint_dir: str,
    sample_dir: str,
    count: int,
    seed: int,
    spherical: bool = False,
    gif: bool = False,
    digit: int = None,
) -> list:
    """Writes interpolation.png (and interpolation.gif) of `count` walks into sample_dir,
    from the latest checkpoint's averaged generator; for a conditional one also
    interpolation_digits.png (and .gif), its walks between digits.

    Returns:
      The paths written, PNGs before GIFs.

    `count`, at least 1, is checked where the command line reads --interpolate.

    Raises:
      TrainerError: no readable checkpoint, a `digit` the model cannot draw, or
        sample_dir or a file cannot be written.
    """
    ensure_writable_dir(sample_dir, "--sample-dir")
    generator, config = loaders.load_sampler(checkpoint_dir)
    generation.check_digit_applies(generator, digit, checkpoint_dir)
    starts, ends = endpoints(count, config.latent_dim, seed, config.latent_distribution)
    z = walks(starts, ends, spherical)  # (K, STEPS, latent_dim)
    runs = {WALKS_NAME: (z, None)}
    if model.num_classes(generator):
        classes = model.num_classes(generator)
        fixed, (first, last) = walk_digits(count, seed, digit, classes)
        one_hot = np.eye(classes, dtype=np.float32)
        runs[WALKS_NAME] = (z, np.repeat(one_hot[fixed][:, None], STEPS, axis=1))
        runs[DIGITS_NAME] = (
            np.repeat(starts[:, None], STEPS, axis=1),
            walks(one_hot[first], one_hot[last]),
        )
    pngs, gifs = [], []
    for name, (noise, labels) in runs.items():
        digits = render(generator, noise, labels)  # (K, STEPS, H, W[, C])
        pngs.append(os.path.join(sample_dir, name + ".png"))
        image_utils.save_png(
            image_utils.grid(digits.reshape((-1,) + digits.shape[2:]), STEPS),
            pngs[-1],
            sample.WRITE_FIX,
        )
        if gif:
            gifs.append(os.path.join(sample_dir, name + ".gif"))
            columns = math.ceil(math.sqrt(count))
            frames = [image_utils.grid(digits[:, step], columns) for step in range(STEPS)]
            animation.write_gif(
                frames,
                gifs[-1],
                [ENDPOINT_MS] + [STEP_MS] * (STEPS - 2) + [ENDPOINT_MS],
                fix="free space or pass another --sample-dir",
            )
    return pngs + gifs
