"""The classifiers that judge generated images, one a data set, and the command that
trains them.

    python -m trainer.evaluation.classifier --data-dir ../shared/mnist
    python -m trainer.evaluation.classifier --dataset fashion-mnist \
        --data-dir ../shared/fashion-mnist

trains one and writes its weights into the package (`mnist_classifier.weights.h5`,
`fashion_mnist_classifier.weights.h5`, about 1 MB each), where `load_judge` finds them
offline. Its 64 penultimate features give the
Frechet distance and precision/recall, its probabilities the classifier score (TF-GAN's
"MNIST score"): Inception features fit MNIST badly (Heusel et al. 2017).
"""

import argparse
import os
import sys

import numpy as np
import tensorflow as tf

from trainer import cli, data
from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.image_spec import DATASET_SPECS, MNIST, ImageSpec

_HERE = os.path.dirname(os.path.abspath(__file__))
# Each data set's shipped classifier.
WEIGHTS = {
    "mnist": os.path.join(_HERE, "mnist_classifier.weights.h5"),
    "fashion-mnist": os.path.join(_HERE, "fashion_mnist_classifier.weights.h5"),
}
WEIGHTS_PATH = WEIGHTS["mnist"]
FEATURES = 64


def build_classifier(spec: ImageSpec = MNIST):
    """A small CNN, images float32 (B, H, W, C) of `spec` in [-1, 1] -> logits float32
    (B, spec.num_classes).

    Blocks of two 3x3 convolutions and a 2x2 pooling (32, 64, then 128 channels) halve
    the image until it is at most 8 pixels on a side: two for MNIST's 28 and for 32,
    three for 64. The layer named "features" gives the 64 penultimate activations.
    """
    layers = tf.keras.layers
    stack = [
        tf.keras.Input(spec.shape),
        layers.RandomTranslation(0.08, 0.08, fill_mode="constant", fill_value=-1.0),
    ]
    side, channels = spec.height, 32
    while side > 8:
        stack += [
            layers.Conv2D(channels, 3, padding="same", activation="relu"),
            layers.Conv2D(channels, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
        ]
        side, channels = side // 2, channels * 2
    stack += [
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(FEATURES, activation="relu", name="features"),
        layers.Dropout(0.3),
        layers.Dense(spec.num_classes),
    ]
    return tf.keras.Sequential(stack, name="classifier")


class Judge:
    """Features and class probabilities of images, from the trained classifier."""

    def __init__(self, classifier):
        features = classifier.get_layer("features").output
        self._model = tf.keras.Model(
            classifier.inputs, [features, tf.keras.layers.Softmax()(classifier.outputs[0])]
        )
        self._call = tf.function(lambda x: self._model(x, training=False))

    def __call__(self, images):
        """images: float32 (N, H, W[, C]) in [-1, 1], or uint8 (N, H, W[, C]) in
        [0, 255], of the classifier's image spec.

        Returns:
          (features float32 (N, 64), probs float32 (N, num_classes)).
        """
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = image_utils.to_model_range(images)
        shape = tuple(self._model.inputs[0].shape[1:])
        images = images.reshape((-1,) + shape).astype(np.float32)
        return image_utils.in_batches(self._call, images)


def load_judge(dataset: str = "mnist", path: str = None) -> Judge:
    """The shipped classifier of `dataset` (or the weights at `path`), ready to judge
    that set's images. Raises TrainerError if the weights are missing."""
    path = path or WEIGHTS[dataset]
    if not os.path.exists(path):
        raise TrainerError(
            f"no {dataset} classifier weights at {path}; train them with "
            f"`python -m trainer.evaluation.classifier --dataset {dataset} --data-dir DIR`"
        )
    classifier = build_classifier(DATASET_SPECS[dataset])
    classifier.load_weights(path)
    return Judge(classifier)


def save_weights(classifier, path: str, spec: ImageSpec = MNIST) -> None:
    """Writes the weights alone, from a fresh uncompiled copy: a compiled model (or a
    clone of one) would also save Adam's slots (3x)."""
    bare = build_classifier(spec)
    bare.set_weights(classifier.get_weights())
    bare.save_weights(path)


def train_classifier(data_dir, epochs: int = 6, seed: int = 0, dataset: str = "mnist"):
    """Trains the classifier of `dataset` on its training set.

    Returns:
      (classifier, test_accuracy).
    """
    (train_x, train_y), (test_x, test_y) = (
        data.load(dataset, data_dir, split) for split in ("train", "test")
    )
    return fit(DATASET_SPECS[dataset], (train_x, train_y), (test_x, test_y), epochs, seed)


def fit(spec: ImageSpec, train: tuple, test: tuple, epochs: int, seed: int = 0):
    """Trains a fresh build_classifier(spec) on train = (uint8 images, int labels).

    Returns:
      (classifier, its accuracy on test, the same pair held out).
    """
    tf.keras.utils.set_random_seed(seed)
    classifier = build_classifier(spec)
    classifier.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    # The rate falls to 0.6 ** 5 of its start over the run, however many epochs it has
    # (6, MNIST's: x0.6 an epoch).
    schedule = tf.keras.callbacks.LearningRateScheduler(
        lambda epoch: 1e-3 * 0.6 ** (epoch * 6 / epochs)
    )
    images, labels = test
    classifier.fit(
        image_utils.to_model_range(train[0]),
        train[1],
        batch_size=128,
        epochs=epochs,
        callbacks=[schedule],
        verbose=2,
    )
    _, accuracy = classifier.evaluate(
        image_utils.to_model_range(images),
        labels,
        batch_size=image_utils.INFERENCE_BATCH,
        verbose=0,
    )
    return classifier, float(accuracy)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.evaluation.classifier",
        description="Train the classifier that judges a data set's generated images: "
        "the shipped ones of MNIST and Fashion-MNIST, or a labelled folder's "
        "(one subfolder per class), for --evaluate --judge.",
    )
    parser.add_argument(
        "--dataset",
        choices=(*DATASET_SPECS, "folder"),
        default="mnist",
        help="default: mnist",
    )
    parser.add_argument("--data-dir", help="folder with the data set's files (as for training)")
    parser.add_argument(
        "--image-size",
        type=int,
        choices=(32, 64),
        default=64,
        help="with --dataset folder: the model's --image-size (default 64)",
    )
    parser.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        help="with --dataset folder: the model's --channels (default: 1 if every image is "
        "grey, else 3)",
    )
    parser.add_argument("--epochs", type=int, help="training epochs (default 6; a folder's 30)")
    parser.add_argument(
        "--output",
        help="weights file to write (default: the package's own for MNIST and "
        "Fashion-MNIST; a folder's: FOLDERNAME-judge.weights.h5 here)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs <= 0:
        parser.error(f"--epochs must be positive, got {args.epochs}")
    cli.setup_logging()
    try:
        if args.dataset == "folder":
            return _train_folder_judge(args)
        classifier, accuracy = train_classifier(
            args.data_dir, args.epochs or 6, args.seed, args.dataset
        )
    except TrainerError as err:
        return cli.fail(err)
    output = args.output or WEIGHTS[args.dataset]
    save_weights(classifier, output, DATASET_SPECS[args.dataset])
    print(f"test accuracy {accuracy:.4f}; weights written to {output}")
    return 0


def _train_folder_judge(args) -> int:
    from trainer import folders
    from trainer.evaluation import folder_judge

    if not args.data_dir:
        raise TrainerError("--dataset folder needs --data-dir: the folder of labelled images")
    folder = folders.load(args.data_dir, args.image_size, args.channels)
    model, info = folder_judge.train(folder, args.data_dir, args.epochs or 30, args.seed)
    name = os.path.basename(os.path.normpath(args.data_dir))
    output = args.output or f"{name}-judge.weights.h5"
    folder_judge.save(model, info, output)
    print(
        f"held-out accuracy {info['held_out_accuracy']:.4f} on {info['held_out_images']} "
        f"images; judge written to {output} and {folder_judge.info_path(output)}\n"
        f"judge a model of this folder with: python -m trainer.task --evaluate --data-dir "
        f"{args.data_dir} --checkpoint-dir DIR --judge {output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
