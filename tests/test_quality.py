"""trainer.evaluation.quality: the per-epoch Frechet distance and classifier score."""

import logging
import types

import numpy as np
import pytest
from helpers import replace

from trainer import images as image_utils
from trainer.evaluation import metrics, quality


def pixel_judge(images):
    """A stand-in classifier: features are 4 pixel sums, probabilities one-hot on the
    brightest quarter, so the expected figures can be computed by hand."""
    pixels = np.asarray(images, np.float32).reshape(len(images), 28, 28)
    quarters = np.stack(
        [
            pixels[:, :14, :14].sum((1, 2)),
            pixels[:, :14, 14:].sum((1, 2)),
            pixels[:, 14:, :14].sum((1, 2)),
            pixels[:, 14:, 14:].sum((1, 2)),
        ],
        axis=1,
    )
    probs = np.zeros((len(pixels), 10), np.float32)
    probs[np.arange(len(pixels)), quarters.argmax(1)] = 1.0
    return quarters, probs


class Replay:
    """A 'generator' that returns the given images, in order, whatever the noise."""

    inputs = [None]  # as a Keras model of one input: unconditional (model.num_classes)

    def __init__(self, images):
        self.images, self.next = image_utils.to_model_range(images), 0

    def __call__(self, z, training=False):
        batch = self.images[self.next : self.next + len(z)]
        self.next += len(z)
        return batch


def test_a_generator_reproducing_the_test_set_scores_its_statistics(blob_images):
    probe = quality.QualityProbe(pixel_judge, blob_images, num_samples=160, latent_dim=3, seed=0)
    figures = probe(Replay(blob_images))
    assert figures["frechet_distance"] == pytest.approx(0.0, abs=1e-3)
    _, probs = pixel_judge(blob_images)
    assert figures["classifier_score"] == pytest.approx(metrics.classifier_score(probs))


def test_a_generator_of_blank_images_is_far_from_the_test_set(blob_images):
    probe = quality.QualityProbe(pixel_judge, blob_images, num_samples=160, latent_dim=3, seed=0)
    figures = probe(Replay(np.zeros_like(blob_images)))
    assert figures["frechet_distance"] > 1e3
    assert figures["classifier_score"] == pytest.approx(1.0)  # one class only


class DigitsAsGray:
    """A conditional 'generator' drawing digit d as a flat gray of 20 d, but one in two
    of its 3s as 8s; it records the digits it was asked for."""

    # As a Keras model of two inputs, [z, labels (B, 10)]: conditional.
    inputs = [None, types.SimpleNamespace(shape=(None, 10))]

    def __init__(self):
        self.asked = []

    def __call__(self, inputs, training=False):
        digits = np.asarray(inputs[1]).argmax(axis=1)  # one-hot (model.inputs)
        self.asked.extend(digits)
        drawn = np.where((digits == 3) & (np.arange(len(digits)) % 2 == 1), 8, digits)
        return (
            np.ones((len(digits), 28, 28, 1), np.float32)
            * (drawn * 20 / 127.5 - 1.0)[:, None, None, None]
        )


def gray_judge(images):
    """Labels a flat gray image of value v as digit round(v / 20)."""
    level = np.asarray(images, np.float32).reshape(len(images), -1).mean(axis=1)
    probs = np.eye(10, dtype=np.float32)[np.clip(np.round(level / 20), 0, 9).astype(int)]
    return np.stack([level, level**2], axis=1), probs


def test_a_conditional_generator_is_also_judged_on_its_worst_digit(blob_images):
    probe = quality.QualityProbe(gray_judge, blob_images, num_samples=200, latent_dim=3, seed=0)
    generator = DigitsAsGray()
    figures = probe(generator)
    assert np.bincount(generator.asked).tolist() == [20] * 10  # every digit equally
    assert figures["labelled_as_asked"] == pytest.approx(0.5)  # the 3s, half of them 8s
    assert "labelled_as_asked" not in probe(Replay(blob_images[:160]))


def test_no_probe_when_off_or_without_the_test_images(tiny_config, tmp_path, caplog):
    assert quality.probe_for(tiny_config) is None  # eval_samples 0
    missing = replace(tiny_config, eval_samples=20, data_dir=str(tmp_path / "no-data"))
    with caplog.at_level(logging.WARNING):
        assert quality.probe_for(missing) is None
    assert "no quality figures in TensorBoard" in caplog.text and "no-data" in caplog.text
