import json
import os

import numpy as np
import pytest
from helpers import FASHION_DIR, MNIST_DIR, needs_fashion, needs_mnist, replace, slow
from test_train import event_tags

from trainer import data, task, train
from trainer import images as image_utils
from trainer.errors import TrainerError
from trainer.evaluation import classifier, evaluate, quality
from trainer.train_config import TrainConfig

needs_weights = pytest.mark.skipif(
    not os.path.exists(classifier.WEIGHTS_PATH), reason="classifier weights not trained yet"
)


@pytest.fixture(scope="module")
def judge():
    return classifier.load_judge()


@slow
@needs_mnist
@needs_weights
def test_shipped_classifier_accuracy_on_the_test_set(judge):
    images, labels = data.load_mnist(MNIST_DIR, "test")
    _, probs = judge(images)
    assert probs.shape == (10000, 10)
    assert np.mean(probs.argmax(axis=1) == labels) >= 0.992


@needs_weights
def test_classifier_weights_fit_in_two_megabytes():
    assert os.path.getsize(classifier.WEIGHTS_PATH) <= 2 * 1024 * 1024


@needs_weights
def test_judge_gives_features_and_probabilities(judge):
    features, probs = judge(np.zeros((3, 28, 28), np.uint8))
    assert features.shape == (3, classifier.FEATURES) and probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # uint8 [0, 255] and float [-1, 1] inputs are the same images.
    same, _ = judge(-np.ones((3, 28, 28, 1), np.float32))
    np.testing.assert_allclose(features, same, rtol=1e-5, atol=1e-5)


@slow
@needs_mnist
@needs_weights
def test_real_data_floor_sits_far_below_noise(judge):
    train_images, _ = data.load_mnist(MNIST_DIR, "train")
    noise = np.random.default_rng(0).integers(0, 256, (2000, 28, 28), dtype=np.uint8)
    test_images, _ = data.load_mnist(MNIST_DIR, "test")
    results = evaluate.judge_against_test_set(
        {"real": train_images[:2000], "noise": noise}, test_images, judge
    )
    real, bad = results["real"], results["noise"]
    assert real["frechet_distance"] * 50 < bad["frechet_distance"]
    assert real["classifier_score"] > 9.5 > bad["classifier_score"] + 3
    assert real["precision"] > 0.6 and bad["precision"] < 0.05
    assert real["confident_share"] > 0.95
    assert max(real["class_shares"]) < 0.14 and min(real["class_shares"]) > 0.07


def test_png_folder_loads_every_sample_but_the_grid(tmp_path):
    pixels = np.arange(3 * 784, dtype=np.uint32).reshape(3, 28, 28).astype(np.uint8)
    for index, image in enumerate(pixels):
        image_utils.save_png(image, str(tmp_path / f"sample_{index:05d}.png"))
    image_utils.save_png(image_utils.grid(pixels, 3), str(tmp_path / "grid.png"))
    np.testing.assert_array_equal(evaluate.load_png_folder(str(tmp_path)), pixels)


def test_png_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(TrainerError, match="no PNG files"):
        evaluate.load_png_folder(str(tmp_path))
    image_utils.save_png(np.zeros((32, 32), np.uint8), str(tmp_path / "big.png"))
    with pytest.raises(TrainerError, match="big.png is 32x32"):
        evaluate.load_png_folder(str(tmp_path))
    (tmp_path / "big.png").write_bytes(b"not a png")
    with pytest.raises(TrainerError, match="big.png: not a readable PNG"):
        evaluate.load_png_folder(str(tmp_path))


@slow  # the real-data floor on 10,000 images
@needs_mnist
@needs_weights
def test_evaluate_cli_on_a_png_folder_prints_a_table_and_json(tmp_path, capsys):
    train_images, _ = data.load_mnist(MNIST_DIR, "train")
    for index, image in enumerate(train_images[-200:]):
        image_utils.save_png(image, str(tmp_path / f"sample_{index:05d}.png"))
    assert task.main(["--evaluate", str(tmp_path), "--data-dir", MNIST_DIR]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].split() == ["measure", "generated", "real", "floor"]
    results = json.loads(out[-1])
    assert results["generated"]["count"] == 200
    assert results["real_floor"]["count"] == 10000
    assert results["generated"]["classifier_score"] > 8  # real digits
    # The memorization check: these "samples" are training images, so it flags them all.
    memo = results["memorization"]
    assert set(memo) == {"percentile", "threshold", "generated", "test"}
    for name in ("generated", "test"):
        assert set(memo[name]) == {
            "mean",
            "percentile_distance",
            "share_below_threshold",
            "count",
        }
        assert memo[name]["count"] == 200  # as many test images as samples
    assert memo["generated"]["mean"] == 0.0 and memo["generated"]["share_below_threshold"] == 1
    assert 2 < memo["test"]["mean"] < 8 and memo["threshold"] > 0  # MNIST: about 4.2
    assert "nearest training image, pixel L2" in "\n".join(out)


@slow
@needs_mnist
@needs_weights
def test_training_logs_quality_figures_each_epoch(tiny_config, mnist_subset):
    config = replace(tiny_config, data_dir=MNIST_DIR, eval_samples=50, train_steps=40)
    train.run(config, images=mnist_subset)
    tags = event_tags(config.log_dir)
    assert tags["eval/frechet_distance"] == "scalars"
    assert tags["eval/classifier_score"] == "scalars"


def test_memorization_check_scales_pixels_to_unit_range_and_uses_as_many_test_images():
    train_images = np.zeros((3, 28, 28), np.uint8)
    train_images[1, 0, :4] = 255  # a 4-pixel stroke
    test_images = np.zeros((50, 28, 28), np.uint8)
    test_images[:, 5, :9] = 255  # 9 lit pixels, 3 away from the blank training image
    generated = train_images[[1, 1, 0, 1]].copy()
    generated[3, 27, 27] = 255  # one pixel off a training image: distance 1
    memo = evaluate.memorization_check(generated, test_images, train_images, seed=0)
    assert memo["test"]["count"] == len(generated)
    assert memo["test"]["mean"] == pytest.approx(3.0) and memo["threshold"] == pytest.approx(3)
    assert memo["generated"]["mean"] == pytest.approx(0.25)  # (0 + 0 + 0 + 1) / 4
    assert memo["generated"]["share_below_threshold"] == 1.0
    assert memo["test"]["share_below_threshold"] == 0.0


def test_table_shows_the_memorization_rows_beside_test_images():
    scores = {key: 0.5 for key, _, _ in evaluate.ROWS}
    scores.update(count=10, class_shares=[0.1] * 10)
    memo = {
        "percentile": 1.0,
        "threshold": 1.2,
        "generated": {
            "mean": 4.0,
            "percentile_distance": 1.5,
            "share_below_threshold": 0.0125,
            "count": 10,
        },
        "test": {
            "mean": 4.5,
            "percentile_distance": 1.2,
            "share_below_threshold": 0.01,
            "count": 10,
        },
    }
    table = evaluate.format_table(
        {
            "generated": scores,
            "real_floor": scores,
            "fd_over_floor": 1.0,
            "memorization": memo,
        }
    )
    lines = table.splitlines()[-4:]
    assert lines[0].split()[-4:] == ["L2", "generated", "test", "images"]
    assert lines[1].split()[-2:] == ["4.000", "4.500"]
    assert lines[2].split()[-2:] == ["1.500", "1.200"]
    assert lines[3].split()[-2:] == ["0.0125", "0.0100"]


# --- per-digit figures of a class-conditional model ---------------------------------------


def digit_judge(images):
    """A stand-in for the classifier judge: uint8 (N, 28, 28) -> (features float64 (N, 3),
    one-hot probs (N, 10)); it reads each image's digit from its top-left pixel, 20 * d."""
    flat = np.asarray(images, np.float64).reshape(len(images), -1)
    features = np.stack([flat.mean(axis=1), flat.std(axis=1), flat[:, 0]], axis=1)
    return features, np.eye(10)[np.clip(np.rint(flat[:, 0] / 20), 0, 9).astype(int)]


def marked_digits(labels, seed):
    """uint8 (N, 28, 28) noise images whose top-left pixel says digit labels[i] to
    digit_judge."""
    images = np.random.default_rng(seed).integers(0, 256, (len(labels), 28, 28), np.uint8)
    images[:, 0, 0] = 20 * np.asarray(labels)
    return images


@pytest.fixture
def fake_mnist(monkeypatch):
    """data.load_mnist gives 200 training and 100 test marked_digits, every digit equally
    often, and the classifier judge is digit_judge: no MNIST files nor weights needed."""
    labels = {"train": np.arange(200) % 10, "test": np.arange(100) % 10}
    monkeypatch.setattr(
        data,
        "load_mnist",
        lambda data_dir, split: (
            marked_digits(labels[split], seed=len(split)),
            labels[split].astype(np.uint8),
        ),
    )
    monkeypatch.setattr(evaluate, "load_judge", lambda *dataset: digit_judge)


def test_png_folder_named_with_digits_is_read_with_its_digits(tmp_path):
    digits = [3, 0, 9, 3]
    pixels = marked_digits(digits, seed=0)
    for index, (image, digit) in enumerate(zip(pixels, digits)):
        image_utils.save_png(image, str(tmp_path / f"sample_{index:05d}_digit{digit}.png"))
    image_utils.save_png(image_utils.grid(pixels, 2), str(tmp_path / "grid.png"))
    images, found = evaluate.load_labelled_png_folder(str(tmp_path))
    np.testing.assert_array_equal(images, pixels)
    np.testing.assert_array_equal(found, digits)
    assert found.dtype == np.int32


def test_png_folder_without_digit_names_has_no_digits(tmp_path):
    image_utils.save_png(np.zeros((28, 28), np.uint8), str(tmp_path / "sample_00000.png"))
    images, digits = evaluate.load_labelled_png_folder(str(tmp_path))
    assert images.shape == (1, 28, 28) and digits is None


def test_png_folder_mixing_named_and_unnamed_files_is_refused(tmp_path):
    for name in ("sample_00000_digit1.png", "sample_00001.png", "sample_00002_digit4.png"):
        image_utils.save_png(np.zeros((28, 28), np.uint8), str(tmp_path / name))
    with pytest.raises(
        TrainerError,
        match="2 of 3 PNGs are named with the digit asked "
        r"for \(e.g. sample_00000_digit1.png\) but sample_00001.png is not",
    ):
        evaluate.load_labelled_png_folder(str(tmp_path))
    (tmp_path / "sample_00001.png").rename(tmp_path / "sample_00001_digit12.png")
    with pytest.raises(
        TrainerError, match="sample_00001_digit12.png: digit 12 is not an MNIST digit"
    ):
        evaluate.load_labelled_png_folder(str(tmp_path))


def per_digit_figures(shares, distances):
    return {
        "labelled_as_asked": shares,
        "intra_class_frechet_distance": distances,
        "count": [5] * 10,
        "min_labelled_as_asked": min(s for s in shares if s),
        "mean_intra_class_frechet_distance": 2.0,
    }


def table_results():
    scores = {key: 0.5 for key, _, _ in evaluate.ROWS}
    scores.update(count=50, class_shares=[0.1] * 10)
    memo = {
        "percentile": 1.0,
        "threshold": 1.2,
        **{
            name: {
                "mean": 4.0,
                "percentile_distance": 1.5,
                "share_below_threshold": 0.01,
                "count": 50,
            }
            for name in ("generated", "test")
        },
    }
    return {
        "generated": scores,
        "real_floor": scores,
        "fd_over_floor": 1.0,
        "memorization": memo,
    }


def test_table_of_a_conditional_model_adds_per_digit_rows_and_nothing_else():
    unconditional = evaluate.format_table(table_results())
    results = table_results()
    results["per_digit"] = {
        "generated": per_digit_figures([None] + [0.9] * 8 + [0.25], [None] + [3.0] * 9),
        "real_floor": per_digit_figures([1.0] * 10, [0.5] * 10),
    }
    lines = evaluate.format_table(results).splitlines()
    assert "labelled as asked" not in unconditional
    assert "Frechet distance" in unconditional  # the overall one
    start = lines.index(next(line for line in lines if line.startswith("labelled as")))
    shares, distances = lines[start : start + 12], lines[start + 12 : start + 24]
    assert shares[0].split() == ["labelled", "as", "asked", "generated", "real", "floor"]
    assert shares[1].split() == ["class", "0", "-", "1.000"]  # digit 0 never asked for
    assert shares[10].split() == ["class", "9", "0.250", "1.000"]
    assert shares[11].split() == ["worst", "class", "0.250", "1.000"]
    assert distances[0].startswith("intra-class Frechet distance")
    assert distances[5].split() == ["class", "4", "3.000", "0.500"]
    assert distances[11].split() == ["mean", "over", "classes", "2.000", "2.000"]
    # Without those 24 rows the table is the unconditional one, row for row.
    assert "\n".join(lines[:start] + lines[start + 24 :]) == unconditional


def test_png_folder_of_a_conditional_model_gets_per_digit_figures(tmp_path, fake_mnist, capsys):
    asked = np.arange(30) % 10
    pixels = marked_digits(np.where(asked == 7, 1, asked), seed=3)  # every 7 looks a 1
    for index, (image, digit) in enumerate(zip(pixels, asked)):
        image_utils.save_png(image, str(tmp_path / f"sample_{index:05d}_digit{digit}.png"))
    assert task.main(["--evaluate", str(tmp_path), "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    results = json.loads(out[-1])
    generated, floor = results["per_digit"]["generated"], results["per_digit"]["real_floor"]
    assert generated["labelled_as_asked"] == [1.0] * 7 + [0.0] + [1.0] * 2
    assert generated["min_labelled_as_asked"] == 0.0
    assert generated["count"] == [3] * 10
    assert floor["labelled_as_asked"] == [1.0] * 10 and floor["count"] == [20] * 10
    assert all(distance >= 0 for distance in generated["intra_class_frechet_distance"])
    assert any(line.split()[:2] == ["class", "7"] for line in out)


def test_png_folder_without_digit_names_gets_no_per_digit_figures(tmp_path, fake_mnist, capsys):
    for index, image in enumerate(marked_digits(np.arange(30) % 10, seed=3)):
        image_utils.save_png(image, str(tmp_path / f"sample_{index:05d}.png"))
    assert task.main(["--evaluate", str(tmp_path), "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip()
    assert "per_digit" not in json.loads(out.splitlines()[-1])
    assert "labelled as asked" not in out and "intra-class" not in out


def test_conditional_checkpoint_is_judged_digit_by_digit(tiny_config, blob_images, fake_mnist):
    config = replace(tiny_config, conditional=True, train_steps=1)
    train.run(config, images=blob_images, labels=(np.arange(160) % 10).astype(np.uint8))
    results = evaluate.run("unused", 30, seed=0, checkpoint_dir=config.checkpoint_dir)
    generated = results["per_digit"]["generated"]
    assert generated["count"] == [3] * 10  # generation.balanced_labels(30)
    assert len(generated["intra_class_frechet_distance"]) == 10
    assert results["per_digit"]["real_floor"]["labelled_as_asked"] == [1.0] * 10
    assert "memorization" in results
    quick = evaluate.run(
        "unused", 30, seed=0, checkpoint_dir=config.checkpoint_dir, check_copies=False
    )
    assert "memorization" not in quick and "nearest training image" not in (
        evaluate.format_table(quick)
    )
    assert quick["per_digit"] == results["per_digit"]
    with pytest.raises(
        TrainerError,
        match=r"digit 5 has 1 row\(s\) in asked.*"
        "--num-eval-samples 20 or more",
    ):
        evaluate.run("unused", 15, seed=0, checkpoint_dir=config.checkpoint_dir)


def test_floor_is_drawn_in_the_digit_shares_the_samples_were_asked_for():
    labels = np.repeat(np.arange(10), [300] * 9 + [40])  # few 9s, as MNIST has few 5s
    at_random = evaluate.floor_pick(labels, None, seed=0)
    assert len(at_random) == len(set(at_random)) == len(labels)  # all 2,740 (< 10,000)
    balanced = evaluate.floor_pick(labels, np.arange(100) % 10, seed=0)
    assert len(set(balanced)) == len(balanced)
    # 274 of each digit wanted; the 9s have only 40, all of which are taken.
    np.testing.assert_array_equal(np.bincount(labels[balanced]), [274] * 9 + [40])
    sevens = evaluate.floor_pick(labels, np.full(20, 7), seed=0)  # --digit 7 samples
    assert set(labels[sevens]) == {7} and len(sevens) == 300
    uneven = evaluate.floor_pick(labels, np.repeat([0, 1], [30, 10]), seed=0)
    np.testing.assert_array_equal(np.bincount(labels[uneven]), [300, 300])  # capped
    assert not np.array_equal(balanced, evaluate.floor_pick(labels, np.arange(100) % 10, seed=1))


needs_fashion_weights = pytest.mark.skipif(
    not os.path.exists(classifier.WEIGHTS["fashion-mnist"]),
    reason="Fashion-MNIST classifier weights not trained yet",
)


@needs_fashion
@needs_fashion_weights
def test_fashion_mnist_is_judged_by_its_own_classifier(tmp_path):
    # The run's per-epoch check loads the judge of its data set: on Fashion-MNIST's test
    # images it must read the clothes (the digit classifier reads them at chance).
    config = replace(TrainConfig(), dataset="fashion-mnist", data_dir=FASHION_DIR, eval_samples=100)
    probe = quality.probe_for(config)
    images, labels = data.load("fashion-mnist", FASHION_DIR, "test")
    _, probs = probe._judge(images)
    assert probs.shape == (10_000, 10)
    assert np.mean(probs.argmax(axis=1) == labels) >= 0.92  # the bar
    _, digit_probs = classifier.load_judge("mnist")(images[:2000])
    assert np.mean(digit_probs.argmax(axis=1) == labels[:2000]) < 0.5


@needs_fashion_weights
def test_fashion_classifier_weights_fit_in_two_megabytes():
    assert os.path.getsize(classifier.WEIGHTS["fashion-mnist"]) <= 2 * 1024 * 1024
