"""A labelled image folder's judge: the classifier that --evaluate --judge measures a
folder model with, as the shipped classifiers measure MNIST and Fashion-MNIST models.

    python -m trainer.evaluation.classifier --dataset folder --data-dir DIR \\
        --image-size 64 --output emoji-judge.weights.h5

holds out HELD_OUT of each class's images (a seeded draw), trains the classifier on the
rest, and writes its weights and, beside them, a JSON file (emoji-judge.json): the image
spec, how many images the folder had, the split's seed and share, and the held-out
accuracy. --evaluate --judge emoji-judge.weights.h5 then measures samples against the
held-out images, with the training part's images as the real-data floor, so the judge
never scores images it was trained on.
"""

import json
import logging
import os

import numpy as np

from trainer.errors import TrainerError
from trainer.evaluation import classifier
from trainer.image_spec import ImageSpec

HELD_OUT = 0.15  # each class's share held out: MNIST's test set is 1/7 of its images


def split(labels: np.ndarray, seed: int = 0, held_out: float = HELD_OUT):
    """Indices (train, held-out) of a labelled folder's images: in each class, a
    seeded draw of round(held_out x its count) images, at least one, is held out.

    Raises:
      TrainerError: a class with fewer than two images (none left for one side).
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels)
    if counts.min() < 2:
        raise TrainerError(
            f"class {int(counts.argmin())} has {counts.min()} image(s); a judge needs at "
            "least 2 of each class (one to train on, one to hold out): add images"
        )
    rng = np.random.default_rng(seed)
    held = [
        rng.permutation(np.flatnonzero(labels == label))[: max(1, round(held_out * count))]
        for label, count in enumerate(counts)
    ]
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), held), held


def info_path(weights_path: str) -> str:
    """The JSON file beside a judge's weights: x.weights.h5 -> x.json."""
    stem = weights_path[: -len(".weights.h5")] if weights_path.endswith(".weights.h5") else None
    return (stem or os.path.splitext(weights_path)[0]) + ".json"


def train(folder, data_dir: str, epochs: int, seed: int = 0):
    """Trains the judge of `folder` (a folders.Folder with labels).

    Returns:
      (classifier, info): info is the JSON file's dict, its "held_out_accuracy" included.
    """
    if folder.labels is None or folder.spec.num_classes < 2:
        raise TrainerError(
            f"{data_dir!r} has no classes: a judge learns the classes of a folder whose "
            "images sit in one subfolder per class (two or more)"
        )
    train_rows, held_rows = split(folder.labels, seed)
    images, labels = np.asarray(folder.images), folder.labels
    logging.info(
        "training the judge of %s on %d images, %d held out",
        data_dir,
        len(train_rows),
        len(held_rows),
    )
    model, accuracy = classifier.fit(
        folder.spec,
        (images[train_rows], labels[train_rows]),
        (images[held_rows], labels[held_rows]),
        epochs,
        seed,
    )
    info = {
        "data_dir": os.path.abspath(data_dir),
        "image": folder.spec.to_dict(),
        "images": len(labels),
        "held_out": HELD_OUT,
        "seed": seed,
        "held_out_accuracy": accuracy,
        "held_out_images": len(held_rows),
    }
    return model, info


def save(model, info: dict, path: str) -> None:
    """Writes the weights to `path` and the info beside them (info_path)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    classifier.save_weights(model, path, ImageSpec.from_dict(info["image"]))
    with open(info_path(path), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)


def load(path: str, spec: ImageSpec, images: int):
    """The judge at `path`, checked against a model's image spec and the folder's image
    count now.

    Returns:
      (classifier.Judge, info).

    Raises:
      TrainerError: a missing file, or a judge of other images (size, channels,
        classes) or of the folder before it changed.
    """
    where = info_path(path)
    if not os.path.exists(path) or not os.path.exists(where):
        raise TrainerError(
            f"--judge {path!r}: no judge there (it needs the weights and {where}); train one "
            "with `python -m trainer.evaluation.classifier --dataset folder --data-dir DIR "
            f"--image-size {spec.height} --output {path}`"
        )
    with open(where) as f:
        info = json.load(f)
    judged = ImageSpec.from_dict(info["image"])
    if judged.shape != spec.shape or judged.class_names != spec.class_names:
        raise TrainerError(
            f"--judge {path!r} judges {_describe(judged)}, but the model makes "
            f"{_describe(spec)}: train a judge on the model's folder and size"
        )
    if info["images"] != images:
        raise TrainerError(
            f"--judge {path!r} was trained when the folder held {info['images']} images; it "
            f"holds {images} now, so its held-out images may not be held out: train it again"
        )
    model = classifier.build_classifier(judged)
    model.load_weights(path)
    return classifier.Judge(model), info


def _describe(spec: ImageSpec) -> str:
    kind = "colour" if spec.channels == 3 else "grey"
    return (
        f"{spec.height}x{spec.width} {kind} images of classes {list(spec.class_names)}"
        if spec.class_names
        else f"{spec.height}x{spec.width} {kind} images without classes"
    )
