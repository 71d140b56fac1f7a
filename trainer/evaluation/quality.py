"""The quality check training runs at each epoch end: Frechet distance and classifier
score of a fixed set of samples, for TensorBoard."""

import logging

import numpy as np

from trainer import data, generation, loaders, model
from trainer.errors import TrainerError
from trainer.evaluation import classifier, metrics


def draw(
    generator, count: int, latent_dim: int, seed: int, distribution: str = "normal", labels=None
) -> np.ndarray:
    """All of generation.generate's batches as one uint8 (count, H, W[, C]) array."""
    return np.concatenate(
        list(generation.generate(generator, count, latent_dim, seed, distribution, labels))
    )


def samples(checkpoint_dir: str, count: int, seed: int, data_labels=None):
    """`count` samples of the latest checkpoint, as --sample writes them.

    Args:
      data_labels: the training images' labels: a conditional generator is asked for
        the classes in their shares (generation.labels_in_shares), as the real images
        it is measured against hold them; None asks for every class equally often.

    Returns:
      (images uint8 (count, H, W[, C]), digits, config): digits is int32 (count,), the
      class each image was asked to be, for a conditional generator, else None; config
      is the checkpoint's.
    """
    generator, config = loaders.load_sampler(checkpoint_dir)
    classes = model.num_classes(generator)
    digits = None
    if classes:
        digits = (
            generation.balanced_labels(count, classes)
            if data_labels is None
            else generation.labels_in_shares(count, data_labels, classes)
        )
    images = draw(generator, count, config.latent_dim, seed, config.latent_distribution, digits)
    return images, digits, config


class QualityProbe:
    """Frechet distance and classifier score of a generator, cheap enough to run every
    epoch: the test set's statistics are computed once, the noise is fixed."""

    def __init__(
        self,
        judge,
        test_images: np.ndarray,
        num_samples: int,
        latent_dim: int,
        seed: int,
        distribution: str = "normal",
    ):
        self._judge = judge
        test_features, _ = judge(test_images)
        self._test_stats = metrics.gaussian_stats(test_features)
        self._count, self._latent_dim, self._seed = num_samples, latent_dim, seed
        self._distribution = distribution

    def __call__(self, generator) -> dict:
        """{"frechet_distance", "classifier_score"}, and for a conditional generator
        (drawing every digit equally often) "labelled_as_asked": the smallest share,
        over the digits, of samples the classifier labels as the digit asked for."""
        features, probs = self._judge(
            draw(generator, self._count, self._latent_dim, self._seed, self._distribution)
        )
        figures = {
            "frechet_distance": metrics.frechet_distance_from_stats(
                *metrics.gaussian_stats(features), *self._test_stats
            ),
            "classifier_score": metrics.classifier_score(probs),
        }
        classes = model.num_classes(generator)
        if classes:
            asked = generation.balanced_labels(self._count, classes)
            figures["labelled_as_asked"] = min(metrics.labelled_as_asked(probs, asked).values())
        return figures


def probe_for(config):
    """The run's per-epoch QualityProbe, or None when config.eval_samples is 0 or the
    classifier or the test images are missing (a warning says which)."""
    if config.eval_samples == 0:
        return None
    if config.dataset not in classifier.WEIGHTS:
        logging.warning(
            "no quality figures in TensorBoard: there is no classifier of %s images to judge them",
            config.dataset,
        )
        return None
    try:
        judge = classifier.load_judge(config.dataset)
        test_images, _ = data.load(config.dataset, config.data_dir, "test")
    except TrainerError as err:
        logging.warning("no quality figures in TensorBoard: %s", err)
        return None
    return QualityProbe(
        judge,
        test_images,
        config.eval_samples,
        config.latent_dim,
        config.seed,
        config.latent_distribution,
    )
