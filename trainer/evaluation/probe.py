"""--probe: what the discriminator learned, read by a linear classifier.

The DCGAN paper's representation-learning experiment (Radford et al. 2015, section 5.1)
on our data: the frozen discriminator's hidden activations, each max-pooled to a 4x4
grid and concatenated, feed a linear classifier trained on a few labelled training
images; MNIST test accuracy measures how much digit structure the features hold. The
same classifier on raw pixels is the baseline.
"""

import numpy as np
import tensorflow as tf

from trainer import data, loaders, model
from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.image_spec import DATASET_SPECS

LABELS = (100, 1000)  # labelled training images, balanced across the digits
DRAWS = 5  # labelled subsets drawn per size; the table gives their mean and spread
L2 = 1e-3  # weight decay of the linear classifier
STEPS = 500  # full-batch Adam steps
POOLED = 4  # each hidden layer is max-pooled to POOLED x POOLED


def feature_model(discriminator):
    """Maps images float32 (B, H, W, C) in [-1, 1] to float32 (B, F): every
    LeakyReLU output of `discriminator`, max-pooled to 4x4 and flattened (a dense
    layer's output as it is), concatenated. A conditional discriminator, which takes
    the digit beside the image, is told none: every digit's share is 1/10, so the
    features hold only what the image says."""
    hidden = [
        layer.output
        for layer in discriminator.layers
        if isinstance(layer, tf.keras.layers.LeakyReLU)
    ]
    pooled = []
    for activation in hidden:  # (B, H, W, C) -> (B, 4, 4, C): window ceil(H / 4)
        if len(activation.shape) == 2:  # a dense layer's (B, units): kept whole
            pooled.append(activation)
            continue
        window = -(-activation.shape[1] // POOLED)
        pooled.append(
            tf.keras.layers.Flatten()(
                tf.keras.layers.MaxPooling2D(window, padding="same")(activation)
            )
        )
    joined = pooled[0] if len(pooled) == 1 else tf.keras.layers.Concatenate()(pooled)
    features = tf.keras.Model(discriminator.inputs, joined, name="discriminator_features")
    classes = model.num_classes(discriminator)
    if not classes:
        return features

    def features_with_no_digit(images, training=False):
        images = tf.convert_to_tensor(images)
        return features(
            [images, tf.fill([tf.shape(images)[0], classes], 1.0 / classes)],
            training=training,
        )

    return features_with_no_digit


def extract(
    features_of, images: np.ndarray, batch: int = image_utils.INFERENCE_BATCH
) -> np.ndarray:
    """float32 (N, F) features of uint8 (N, H, W[, C]) images."""
    return image_utils.in_batches(
        lambda pixels: features_of(image_utils.to_model_range(pixels), training=False),
        images,
        batch=batch,
    ).astype(np.float32)


def balanced_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of `count` examples, count // 10 of each digit, drawn by `seed`."""
    rng = np.random.default_rng(seed)
    per_class = count // 10
    picks = [
        rng.choice(np.flatnonzero(labels == digit), per_class, replace=False) for digit in range(10)
    ]
    return np.concatenate(picks)


def linear_accuracy(train_x, train_y, test_x, test_y, seed: int = 0) -> float:
    """Test accuracy of an L2-regularized softmax regression fit on (train_x, train_y).

    Features are standardized with the training examples' mean and deviation; the fit
    is full-batch Adam, deterministic for a seed.
    """
    mean, scale = train_x.mean(0), train_x.std(0) + 1e-6
    x = tf.constant((train_x - mean) / scale)
    y = tf.constant(train_y.astype(np.int64))
    rng = np.random.default_rng(seed)
    weights = tf.Variable(rng.normal(0, 0.01, (train_x.shape[1], 10)).astype(np.float32))
    bias = tf.Variable(np.zeros(10, np.float32))
    optimizer = tf.keras.optimizers.Adam(0.01)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = x @ weights + bias
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            loss += L2 * tf.reduce_sum(tf.square(weights))
        optimizer.apply_gradients(zip(tape.gradient(loss, [weights, bias]), [weights, bias]))

    for _ in range(STEPS):
        step()
    predictions = np.argmax(((test_x - mean) / scale) @ weights.numpy() + bias.numpy(), 1)
    return float(np.mean(predictions == test_y))


def run(checkpoint_dir: str, data_dir) -> dict:
    """Test accuracy of the linear probe on the discriminator's features and on pixels.

    Returns:
      {"discriminator": {labels: [accuracy per draw]}, "pixels": {...}, "features": F}.
    """
    discriminator, config = loaders.load_discriminator(checkpoint_dir)
    if config.dataset not in DATASET_SPECS:
        raise TrainerError(
            f"--probe needs a labelled test set, which a {config.dataset} model has not: "
            f"it probes models of {', '.join(DATASET_SPECS)}"
        )
    features_of = feature_model(discriminator)
    train_images, train_labels = data.load(config.dataset, data_dir, "train")
    test_images, test_labels = data.load(config.dataset, data_dir, "test")
    test_features = extract(features_of, test_images)
    test_pixels = image_utils.unit_pixels(test_images)
    results = {"discriminator": {}, "pixels": {}, "features": test_features.shape[1]}
    for count in LABELS:
        for source in results["discriminator"], results["pixels"]:
            source[count] = []
        for draw in range(DRAWS):
            pick = balanced_subset(train_labels, count, seed=draw)
            labels = train_labels[pick]
            results["discriminator"][count].append(
                linear_accuracy(
                    extract(features_of, train_images[pick]),
                    labels,
                    test_features,
                    test_labels,
                    seed=draw,
                )
            )
            results["pixels"][count].append(
                linear_accuracy(
                    image_utils.unit_pixels(train_images[pick]),
                    labels,
                    test_pixels,
                    test_labels,
                    seed=draw,
                )
            )
    return results


def format_table(results: dict) -> str:
    lines = [
        f"linear classifier, MNIST test accuracy (mean +- sd over {DRAWS} draws "
        "of the labelled images)",
        f"{'labelled images':<18}{'discriminator features':>26}{'raw pixels':>16}",
    ]
    for count in LABELS:
        cells = [
            f"{np.mean(results[s][count]):.3f} +- {np.std(results[s][count]):.3f}"
            for s in ("discriminator", "pixels")
        ]
        lines.append(f"{count:<18}{cells[0]:>26}{cells[1]:>16}")
    lines.append(f"discriminator features per image: {results['features']}")
    return "\n".join(lines)
