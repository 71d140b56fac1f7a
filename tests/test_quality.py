"""trainer.evaluation.quality: the per-epoch Frechet distance and classifier score."""

import logging

import numpy as np
import pytest

from helpers import replace
from trainer import images as image_utils
from trainer.evaluation import metrics, quality


def pixel_judge(images):
    """A stand-in classifier: features are 4 pixel sums, probabilities one-hot on the
    brightest quarter, so the expected figures can be computed by hand."""
    pixels = np.asarray(images, np.float32).reshape(len(images), 28, 28)
    quarters = np.stack([pixels[:, :14, :14].sum((1, 2)), pixels[:, :14, 14:].sum((1, 2)),
                         pixels[:, 14:, :14].sum((1, 2)), pixels[:, 14:, 14:].sum((1, 2))],
                        axis=1)
    probs = np.zeros((len(pixels), 10), np.float32)
    probs[np.arange(len(pixels)), quarters.argmax(1)] = 1.0
    return quarters, probs


class Replay:
    """A 'generator' that returns the given images, in order, whatever the noise."""

    def __init__(self, images):
        self.images, self.next = image_utils.to_model_range(images), 0

    def __call__(self, z, training=False):
        batch = self.images[self.next:self.next + len(z)]
        self.next += len(z)
        return batch


def test_a_generator_reproducing_the_test_set_scores_its_statistics(blob_images):
    probe = quality.QualityProbe(pixel_judge, blob_images, num_samples=160, latent_dim=3,
                                 seed=0)
    figures = probe(Replay(blob_images))
    assert figures["frechet_distance"] == pytest.approx(0.0, abs=1e-3)
    _, probs = pixel_judge(blob_images)
    assert figures["classifier_score"] == pytest.approx(metrics.classifier_score(probs))


def test_a_generator_of_blank_images_is_far_from_the_test_set(blob_images):
    probe = quality.QualityProbe(pixel_judge, blob_images, num_samples=160, latent_dim=3,
                                 seed=0)
    figures = probe(Replay(np.zeros_like(blob_images)))
    assert figures["frechet_distance"] > 1e3
    assert figures["classifier_score"] == pytest.approx(1.0)  # one class only


def test_no_probe_when_off_or_without_the_test_images(tiny_config, tmp_path, caplog):
    assert quality.probe_for(tiny_config) is None  # eval_samples 0
    missing = replace(tiny_config, eval_samples=20, data_dir=str(tmp_path / "no-data"))
    with caplog.at_level(logging.WARNING):
        assert quality.probe_for(missing) is None
    assert "no quality figures in TensorBoard" in caplog.text and "no-data" in caplog.text
