"""--evaluate: how good the digits are, judged by the MNIST classifier against the test set.

Every figure comes with its real-data floor: the same measure for 10,000 real training
images against the test set, the best a generator could hope for (for a conditional
model, drawn in the digit shares its samples were asked for: floor_pick).

A class-conditional model (or a folder of PNGs named ..._digitD.png) is also judged digit
by digit: the share of samples labelled as the digit asked for and each digit's Frechet
distance to that digit's test images, beside the floor's training images and their labels.

The memorization check measures each sample's pixel distance to its nearest training
image. Real training images would be trivially 0 there, so its reference is the same
distance for as many MNIST test images, real digits the model never saw.
"""

import json
import logging
import os
import re
import time

import numpy as np
import tensorflow as tf
from PIL import UnidentifiedImageError

from trainer import data, paths
from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.evaluation import folder_eval, memorization, metrics, quality
from trainer.evaluation.classifier import load_judge
from trainer.image_spec import DATASET_SPECS, MNIST
from trainer.train_config import load_saved_config

FLOOR_IMAGES = 10_000

ROWS = [  # (key, label, format)
    ("frechet_distance", "Frechet distance (lower is better)", "{:.3f}"),
    ("classifier_score", "classifier score (10 is best)", "{:.3f}"),
    ("precision", "precision, k=3", "{:.3f}"),
    ("recall", "recall, k=3", "{:.3f}"),
    ("class_kl", "KL(class shares || uniform)", "{:.4f}"),
    ("min_class_share", "rarest class's share", "{:.3f}"),
    ("max_class_share", "commonest class's share", "{:.3f}"),
    ("confident_share", "share with p > 0.9", "{:.3f}"),
]

# --sample names a conditional model's PNGs sample_00012_digit7.png: the digit asked for.
_DIGIT_NAME = re.compile(r"_digit(\d+)\.png$")


def load_png_folder(folder: str) -> np.ndarray:
    """Every PNG in `folder` (local, gs:// or ram://) but grid.png, as uint8 (N, H, W)
    of image_spec.MNIST, the images the MNIST classifier judges.

    Raises:
      TrainerError: no such PNGs, or one that is not of MNIST's size (named).
    """
    return load_labelled_png_folder(folder)[0]


def load_labelled_png_folder(folder: str):
    """load_png_folder, and the digit each PNG was asked to be when its name says so.

    Returns:
      (images uint8 (N, H, W), digits): digits is int32 (N,) when every PNG is named
      ..._digitD.png (a conditional model's --sample), None when none is.

    Raises:
      TrainerError: as load_png_folder, or some PNGs named with a digit and some not.
    """
    pngs = [p for p in paths.matching(folder, "*.png") if os.path.basename(p) != "grid.png"]
    if not pngs:
        raise TrainerError(
            f"--evaluate {folder!r}: no PNG files there; write some with "
            "`python -m trainer.task --sample 10000`"
        )
    digits = _digits_in_names(folder, pngs)
    images = np.empty((len(pngs), MNIST.height, MNIST.width), dtype=np.uint8)
    for index, path in enumerate(pngs):
        images[index] = _read_digit_png(path)
    return images, digits


def _digits_in_names(folder: str, pngs: list):
    """int32 (N,) digits from names ending _digitD.png, None if no name has one."""
    found = [_DIGIT_NAME.search(os.path.basename(path)) for path in pngs]
    named = [path for path, match in zip(pngs, found) if match]
    if not named:
        return None
    if len(named) < len(pngs):
        unnamed = next(path for path, match in zip(pngs, found) if not match)
        raise TrainerError(
            f"--evaluate {folder!r}: {len(named)} of {len(pngs)} PNGs are named with the "
            f"digit asked for (e.g. {os.path.basename(named[0])}) but "
            f"{os.path.basename(unnamed)} is not; evaluate one model's samples at a time: "
            "move the others to another folder"
        )
    digits = np.array([int(match.group(1)) for match in found], dtype=np.int32)
    if digits.max() >= MNIST.num_classes:
        bad = pngs[int(digits.argmax())]
        raise TrainerError(
            f"{bad}: digit {digits.max()} is not an MNIST digit (0 to "
            f"{MNIST.num_classes - 1}); rename or remove it"
        )
    return digits


def _read_digit_png(path: str) -> np.ndarray:
    """One PNG of MNIST's size as uint8 (H, W), or TrainerError naming the file."""
    try:
        with image_utils.open_image(path) as image:
            if image.size != (MNIST.width, MNIST.height):
                raise TrainerError(
                    f"{path} is {image.size[0]}x{image.size[1]}, expected a "
                    f"{MNIST.width}x{MNIST.height} digit"
                )
            return np.asarray(image.convert("L"))
    except (OSError, UnidentifiedImageError, tf.errors.OpError) as err:
        raise TrainerError(f"{path}: not a readable PNG ({paths.reason(err)})") from err


def judge_against_test_set(
    images_by_name: dict,
    test_images: np.ndarray,
    judge=None,
    digits_by_name: dict = None,
    test_labels: np.ndarray = None,
) -> dict:
    """Scores each uint8 (N, H, W) image set against `test_images`, the MNIST test set
    as uint8 (N, H, W).

    Args:
      digits_by_name: optional name -> int (N,), the digit each of that set's images was
        asked to be; those sets are judged digit by digit too, against `test_labels`,
        the test images' int (M,) digits.

    Returns:
      name -> metrics.summarize(...) dict, plus min/max_class_share and count; with
      digits_by_name, also "per_digit": name -> metrics.per_digit(...) dict.

    Raises:
      TrainerError: a digit asked for fewer than twice (named, with the fix).
    """
    judge = judge or load_judge()
    test_features, _ = judge(test_images)
    results, per_digit = {}, {}
    for name, images in images_by_name.items():
        features, probs = judge(images)
        scores = metrics.summarize(test_features, features, probs)
        scores.update(
            min_class_share=min(scores["class_shares"]),
            max_class_share=max(scores["class_shares"]),
            count=len(images),
        )
        results[name] = scores
        if digits_by_name and name in digits_by_name:
            per_digit[name] = _per_digit(
                features, probs, digits_by_name[name], test_features, test_labels, name
            )
    if per_digit:
        results["per_digit"] = per_digit
    return results


def _per_digit(features, probs, digits, test_features, test_labels, name) -> dict:
    """metrics.per_digit, its complaint about a digit with too few images a TrainerError
    saying how to get more."""
    try:
        return metrics.per_digit(
            features, probs, digits, test_features, test_labels, probs.shape[1]
        )
    except ValueError as err:
        raise TrainerError(
            f"--evaluate: per-digit figures of the {name} images: {err}; "
            "judge at least 2 images of each digit (--num-eval-samples 20 "
            "or more, or more PNGs of it)"
        ) from err


def run(
    data_dir,
    num_samples: int,
    seed: int,
    checkpoint_dir: str = None,
    png_folder: str = None,
    check_copies: bool = True,
    dataset: str = None,
    judge_path: str = None,
) -> dict:
    """Evaluates a checkpoint's samples, or a folder of PNGs, beside the real-data floor
    of its data set, judged by that set's classifier; `check_copies` False skips the
    memorization check (its nearest-neighbour search of every sample among the training
    images). `dataset` names the set a PNG folder holds (default mnist); a checkpoint's
    own config names its set, and a `dataset` that differs is refused. A folder model is
    judged by the judge at `judge_path` (run_judged_folder), or without one by
    folder_eval.

    Returns:
      {"generated": scores, "real_floor": scores, "fd_over_floor": ratio,
      "memorization": memorization_check's dict against all training images}; for a
      conditional model or a folder of ..._digitD.png, also "per_digit": {"generated":
      ..., "real_floor": ...}, metrics.per_digit's dicts, the floor's training images
      asked for their own labels.
    """
    if not png_folder and load_saved_config(checkpoint_dir).dataset == "folder":
        if judge_path:
            return run_judged_folder(data_dir, num_samples, seed, checkpoint_dir, judge_path)
        return folder_eval.run(checkpoint_dir, data_dir, num_samples, seed)  # no classifier
    if judge_path:
        raise TrainerError(
            "--judge is for models of an image folder; MNIST and Fashion-MNIST models are "
            "judged by the classifiers the package ships: drop --judge"
        )
    if png_folder:
        generated, digits = load_labelled_png_folder(png_folder)
        dataset = dataset or "mnist"
    else:
        generated, digits, config = quality.samples(checkpoint_dir, num_samples, seed)
        trained_on = config.dataset
        if dataset not in (None, trained_on):
            raise TrainerError(
                f"the model in {checkpoint_dir!r} was trained on {trained_on}, not {dataset}; "
                f"drop --dataset, or pass the --checkpoint-dir of a {dataset} model"
            )
        dataset = trained_on
    train_images, train_labels = data.load(dataset, data_dir, "train")
    test_images, test_labels = data.load(dataset, data_dir, "test")
    results = judge_beside_floor(
        generated,
        digits,
        (train_images, train_labels),
        (test_images, test_labels),
        load_judge(dataset),
        seed,
    )
    results["class_names"] = list(DATASET_SPECS[dataset].class_names)
    if check_copies:
        results["memorization"] = memorization_check(generated, test_images, train_images, seed)
    return results


def judge_beside_floor(generated, digits, train: tuple, test: tuple, judge, seed: int) -> dict:
    """judge_against_test_set's figures of the samples and of the real-data floor (the
    training images floor_pick draws), against the test images, and their ratio.

    Args:
      generated: uint8 samples; digits: the class each was asked to be, or None.
      train, test: (uint8 images, int labels) each.
    """
    (train_images, train_labels), (test_images, test_labels) = train, test
    pick = floor_pick(train_labels, digits, seed)
    digits_by_name = None
    if digits is not None:
        digits_by_name = {"generated": digits, "real_floor": train_labels[pick]}
    results = judge_against_test_set(
        {"generated": generated, "real_floor": train_images[pick]},
        test_images,
        judge=judge,
        digits_by_name=digits_by_name,
        test_labels=test_labels,
    )
    results["fd_over_floor"] = results["generated"]["frechet_distance"] / max(
        results["real_floor"]["frechet_distance"], 1e-12
    )
    return results


def run_judged_folder(
    data_dir: str, num_samples: int, seed: int, checkpoint_dir: str, judge_path: str
) -> dict:
    """A folder model's samples judged as run() judges MNIST's, by the folder's judge
    (folder_judge): against the images it held out, beside the floor of as many of the
    images it trained on (drawn as floor_pick draws), with the memorization check
    against those training images and the Frechet Inception distance (folder_eval) as
    "inception".
    """
    from trainer import folders  # here: it reads Pillow's plugins, which MNIST needs not
    from trainer.evaluation import folder_judge

    if not data_dir:
        raise TrainerError(
            "--evaluate --judge compares a folder model's samples with the folder's images: "
            "pass --data-dir with the folder it was trained on"
        )
    spec = load_saved_config(checkpoint_dir).image
    folder = folders.load(data_dir, spec.height, spec.channels)
    judge, info = folder_judge.load(judge_path, spec, len(folder.images))
    train_rows, held_rows = folder_judge.split(folder.labels, info["seed"], info["held_out"])
    images = np.asarray(folder.images)
    train_images, train_labels = images[train_rows], folder.labels[train_rows]
    held_images, held_labels = images[held_rows], folder.labels[held_rows]
    # A folder's classes may be of any sizes: samples asked for in the same shares.
    generated, digits, _ = quality.samples(checkpoint_dir, num_samples, seed, train_labels)
    results = judge_beside_floor(
        generated,
        digits,
        (train_images, train_labels),
        (held_images, held_labels),
        judge,
        seed,
    )
    results["class_names"] = list(spec.class_names)
    results["judge"] = {"path": judge_path, **info}
    results["memorization"] = memorization_check(generated, held_images, train_images, seed)
    results["inception"] = folder_eval.inception_figures(
        generated, *folder_eval.halves(images, num_samples, seed)
    )
    return results


def floor_pick(train_labels: np.ndarray, digits, seed: int) -> np.ndarray:
    """The training images (indices) the real-data floor is measured on: FLOOR_IMAGES at
    random; or, for samples asked to be given digits, each digit in the share it was
    asked for (1,000 of each for a conditional model's 10,000 samples).

    Real data drawn at random keeps MNIST's uneven digit shares (9% 5s, 11% 1s), which
    the test set shares; a model asked for every digit equally often is judged against
    real data drawn the same way, or the shares alone would count against it: 1,000 real
    training images of each digit are 0.789 from the test set, 10,000 at random 0.569
    (docs/evaluation.md, Digit by digit: conditional models).
    """
    rng = np.random.default_rng(seed)
    size = min(FLOOR_IMAGES, len(train_labels))
    if digits is None:
        return rng.choice(len(train_labels), size, replace=False)
    asked = np.bincount(digits, minlength=int(train_labels.max()) + 1)
    wanted = np.round(size * asked / asked.sum()).astype(int)
    return np.concatenate(
        [
            rng.choice(pool, min(count, len(pool)), replace=False)
            for pool, count in (
                (np.flatnonzero(train_labels == digit), count) for digit, count in enumerate(wanted)
            )
        ]
    )


def memorization_check(
    generated: np.ndarray, test_images: np.ndarray, train_images: np.ndarray, seed: int
) -> dict:
    """Nearest-training-image pixel distances of the samples, beside as many test images.

    Args:
      generated, test_images, train_images: uint8 (N, H, W) in [0, 255]; up to
        len(generated) test images, picked by `seed`, are the reference.

    Returns:
      memorization.memorization's dict, its "held_out" entry renamed "test": distances are
      Euclidean over the pixels scaled to [0, 1].
    """
    pick = np.random.default_rng(seed).choice(
        len(test_images), min(len(generated), len(test_images)), replace=False
    )
    started = time.perf_counter()
    results = memorization.memorization(
        image_utils.unit_pixels(generated),
        image_utils.unit_pixels(test_images[pick]),
        image_utils.unit_pixels(train_images),
    )
    logging.info(
        "memorization check: %d samples and %d test images against %d training images in %.1f s",
        len(generated),
        len(pick),
        len(train_images),
        time.perf_counter() - started,
    )
    results["test"] = results.pop("held_out")
    return results


def format_table(results: dict) -> str:
    """A two-column text table, generated vs real-data floor, then the digit shares, the
    per-digit rows of a conditional model and the memorization rows (generated vs test
    images); a folder model's figures as folder_eval gives them."""
    if "frechet_inception_distance" in results:  # a folder model without a judge
        return folder_eval.format_table(results)
    generated, floor = results["generated"], results["real_floor"]
    lines = [
        f"{'measure':<36}{'generated':>12}{'real floor':>12}",
        f"{'images':<36}{generated['count']:>12}{floor['count']:>12}",
    ]
    for key, label, fmt in ROWS:
        lines.append(f"{label:<36}{fmt.format(generated[key]):>12}{fmt.format(floor[key]):>12}")
    lines.append(f"{'Frechet distance / floor':<36}{results['fd_over_floor']:>12.2f}")
    names = results.get("class_names") or [str(c) for c in range(len(generated["class_shares"]))]
    shares = "  ".join(f"{n}:{s:.3f}" for n, s in zip(names, generated["class_shares"]))
    lines.append(f"class shares (generated)  {shares}")
    if "per_digit" in results:
        lines.extend(_per_digit_lines(results["per_digit"], names))
    if "memorization" in results:
        held = "held-out" if "judge" in results else "test images"
        lines.extend(_memorization_lines(results["memorization"], held))
    if "inception" in results:
        lines.extend(folder_eval.inception_lines(results["inception"]))
    return "\n".join(lines)


def _per_digit_lines(per_digit: dict, names: list) -> list:
    """Per digit, the share labelled as asked and the intra-class Frechet distance, then
    the worst share and the mean distance; "-" for a digit not asked for."""
    generated, floor = per_digit["generated"], per_digit["real_floor"]
    blocks = [
        (
            "labelled as asked",
            "labelled_as_asked",
            "{:.3f}",
            ("  worst class", "min_labelled_as_asked"),
        ),
        (
            "intra-class Frechet distance",
            "intra_class_frechet_distance",
            "{:.3f}",
            ("  mean over classes", "mean_intra_class_frechet_distance"),
        ),
    ]
    lines = []
    for title, key, fmt, (summary_label, summary_key) in blocks:
        lines.append(f"{title:<36}{'generated':>12}{'real floor':>12}")
        for digit, (mine, real) in enumerate(zip(generated[key], floor[key])):
            mine = "-" if mine is None else fmt.format(mine)
            lines.append(f"{'  class ' + names[digit]:<36}{mine:>12}{fmt.format(real):>12}")
        lines.append(
            f"{summary_label:<36}{fmt.format(generated[summary_key]):>12}"
            f"{fmt.format(floor[summary_key]):>12}"
        )
    return lines


def _memorization_lines(memo: dict, held: str = "test images") -> list:
    """The memorization rows: samples beside test images (not the training floor, whose
    nearest training image is itself), the 1st percentile as
    memorization.memorization's default."""
    rows = [
        ("  mean distance", "mean", "{:.3f}"),
        ("  1st-percentile distance", "percentile_distance", "{:.3f}"),
        ("  share below real 1st percentile", "share_below_threshold", "{:.4f}"),
    ]
    lines = [f"{'nearest training image, pixel L2':<36}{'generated':>12}{held:>12}"]
    for label, key, fmt in rows:
        lines.append(
            f"{label:<36}{fmt.format(memo['generated'][key]):>12}"
            f"{fmt.format(memo['test'][key]):>12}"
        )
    return lines


def to_json(results: dict) -> str:
    """One JSON line with every figure, for scripts."""
    return json.dumps(results, sort_keys=True, default=float)
