"""The noise z a generator maps to images: one definition for training and sampling.

"normal" is N(0, 1) per coordinate; "uniform" is U(-1, 1), the DCGAN paper's choice.
"""

import numpy as np

DISTRIBUTIONS = ("normal", "uniform")


def check_distribution(distribution: str) -> None:
    """Raises ValueError unless `distribution` is one of DISTRIBUTIONS."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"latent_distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}"
        )


def draw(
    rng: np.random.Generator, count: int, latent_dim: int, distribution: str = "normal"
) -> np.ndarray:
    """float32 (count, latent_dim) noise from a NumPy generator."""
    check_distribution(distribution)
    if distribution == "uniform":
        return rng.uniform(-1.0, 1.0, (count, latent_dim)).astype(np.float32)
    return rng.standard_normal((count, latent_dim)).astype(np.float32)


STANDING_SAMPLES = 1024  # noise rows for a generator's batch-norm statistics


def standing_batch(latent_dim: int, distribution: str = "normal") -> np.ndarray:
    """The fixed float32 (STANDING_SAMPLES, latent_dim) noise on which a sampled
    generator's batch-norm statistics are measured (model.set_standing_statistics);
    fixed, so sampling with a given --seed is reproducible."""
    return draw(np.random.default_rng(0), STANDING_SAMPLES, latent_dim, distribution)


def draw_tf(noise, shape, distribution: str = "normal"):
    """float32 noise of `shape` from a tf.random.Generator, inside compiled code."""
    check_distribution(distribution)
    if distribution == "uniform":
        return noise.uniform(shape, minval=-1.0, maxval=1.0)
    return noise.normal(shape)


def draw_stateless(shape, seeds, distribution: str = "normal", algorithm: str = "philox"):
    """float32 noise of `shape` that depends only on `seeds` (int64 (2,)) and the named
    algorithm: the same draws on any device (tf.random.stateless_*)."""
    import tensorflow as tf  # here: the config imports this module, and --help needs no TF

    check_distribution(distribution)
    if distribution == "uniform":
        return tf.random.stateless_uniform(shape, seeds, minval=-1.0, maxval=1.0, alg=algorithm)
    return tf.random.stateless_normal(shape, seeds, alg=algorithm)
