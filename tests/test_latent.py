import numpy as np
import pytest
import tensorflow as tf
from helpers import replace

from trainer import latent, sample, train
from trainer.loaders import load_sampler


def test_numpy_draws_have_the_named_distribution():
    rng = np.random.default_rng(0)
    uniform = latent.draw(rng, 4000, 10, "uniform")
    normal = latent.draw(rng, 4000, 10, "normal")
    assert uniform.shape == normal.shape == (4000, 10) and uniform.dtype == np.float32
    assert uniform.min() >= -1 and uniform.max() <= 1
    assert abs(uniform.std() - 1 / np.sqrt(3)) < 0.01  # U(-1, 1): sd 0.577
    assert abs(normal.std() - 1) < 0.02 and np.abs(normal).max() > 2.5


def test_an_unknown_distribution_is_refused_not_drawn_as_normal_noise():
    with pytest.raises(
        ValueError,
        match="latent_distribution must be one of normal, uniform, got 'gaussian'",
    ):
        latent.draw(np.random.default_rng(0), 2, 3, "gaussian")
    with pytest.raises(ValueError, match="got 'gaussian'"):
        latent.draw_tf(tf.random.Generator.from_seed(0), (2, 3), "gaussian")


def test_tensorflow_draws_have_the_named_distribution():
    noise = tf.random.Generator.from_seed(0)
    uniform = latent.draw_tf(noise, [4000, 10], "uniform").numpy()
    normal = latent.draw_tf(noise, [4000, 10], "normal").numpy()
    assert uniform.min() >= -1 and uniform.max() <= 1 and abs(uniform.std() - 0.577) < 0.01
    assert abs(normal.std() - 1) < 0.02


def test_uniform_latent_run_samples_with_uniform_noise(tiny_config, blob_images, monkeypatch):
    config = replace(tiny_config, latent_distribution="uniform")
    train.run(config, images=blob_images)
    generator, saved = load_sampler(config.checkpoint_dir)
    assert saved.latent_distribution == "uniform"
    seen = []
    real_draw = latent.draw
    monkeypatch.setattr(latent, "draw", lambda *a: seen.append(a[3]) or real_draw(*a))
    sample.write_samples(config.checkpoint_dir, str(config.sample_dir), 3, seed=0)
    assert seen and set(seen) == {"uniform"}  # the standing batch and the samples


def test_stateless_draws_depend_on_the_seeds_alone_and_have_the_named_distribution():
    seeds = tf.constant([7, 0], tf.int64)
    uniform = latent.draw_stateless([2000, 10], seeds, "uniform").numpy()
    np.testing.assert_array_equal(uniform, latent.draw_stateless([2000, 10], seeds, "uniform"))
    assert uniform.min() >= -1 and uniform.max() <= 1
    assert abs(uniform.std() - 1 / np.sqrt(3)) < 0.01
    normal = latent.draw_stateless([2000, 10], seeds, "normal").numpy()
    assert abs(normal.std() - 1) < 0.02
    other = latent.draw_stateless([2000, 10], tf.constant([8, 0], tf.int64), "normal")
    assert not np.allclose(normal, other)
    with pytest.raises(ValueError, match="got 'gaussian'"):
        latent.draw_stateless([2, 3], seeds, "gaussian")
