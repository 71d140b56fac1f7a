import os

import numpy as np
import tensorflow as tf
from helpers import MNIST_DIR, REPO, needs_mnist, slow

from trainer import model
from trainer.evaluation import probe


def test_features_are_each_hidden_layer_pooled_to_4x4():
    features_of = probe.feature_model(model.build_discriminator(8))
    features = probe.extract(features_of, np.zeros((3, 28, 28), np.uint8), batch=2)
    # 14x14x8 and 7x7x16 activations, each max-pooled to 4x4.
    assert features.shape == (3, 4 * 4 * 8 + 4 * 4 * 16) and features.dtype == np.float32


def test_a_conditional_discriminators_features_are_read_with_no_digit_given():
    # The digit enters beside the image: the probe gives every digit a share of 1/10,
    # so its features are the images' alone, not those of a digit it was told.
    discriminator = model.build_discriminator(8, num_classes=10)
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    features = probe.extract(probe.feature_model(discriminator), images, batch=2)
    assert features.shape == (3, 4 * 4 * 8 + 4 * 4 * 16)
    first = tf.keras.Model(
        discriminator.inputs,
        next(
            layer.output
            for layer in discriminator.layers
            if isinstance(layer, tf.keras.layers.LeakyReLU)
        ),
    )  # (B, 14, 14, 8)
    x = images[..., None].astype(np.float32) / 127.5 - 1.0

    def first_pooled(labels):
        activations = first([tf.constant(x), tf.constant(labels, tf.float32)])
        return tf.keras.layers.MaxPooling2D(4, padding="same")(activations).numpy().reshape(3, -1)

    np.testing.assert_allclose(
        features[:, : 4 * 4 * 8], first_pooled(np.full((3, 10), 0.1)), rtol=1e-5, atol=1e-6
    )
    told_seven = first_pooled(np.eye(10)[[7, 7, 7]])
    assert np.abs(features[:, : 4 * 4 * 8] - told_seven).max() > 1e-4


def test_balanced_subset_takes_the_same_count_of_each_digit():
    labels = np.repeat(np.arange(10), 50)
    pick = probe.balanced_subset(labels, 100, seed=0)
    assert len(set(pick)) == 100
    assert np.bincount(labels[pick], minlength=10).tolist() == [10] * 10
    assert not np.array_equal(pick, probe.balanced_subset(labels, 100, seed=1))


def test_linear_classifier_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 5, (10, 20)).astype(np.float32)

    def blobs(n):
        labels = np.arange(n) % 10
        return centers[labels] + rng.normal(0, 1, (n, 20)).astype(np.float32), labels

    (train_x, train_y), (test_x, test_y) = blobs(200), blobs(1000)
    assert probe.linear_accuracy(train_x, train_y, test_x, test_y) > 0.97
    shuffled = rng.permutation(train_y)  # labels unrelated to the features
    assert probe.linear_accuracy(train_x, shuffled, test_x, test_y) < 0.3


@slow
@needs_mnist
def test_probe_of_the_shipped_discriminator_beats_chance_widely(monkeypatch):
    monkeypatch.setattr(probe, "LABELS", (100,))
    monkeypatch.setattr(probe, "DRAWS", 1)
    results = probe.run(os.path.join(REPO, "MNIST-trained-model"), MNIST_DIR)
    assert results["discriminator"][100][0] > 0.5  # chance is 0.1
    assert results["pixels"][100][0] > 0.5
    assert "discriminator features" in probe.format_table(results)
