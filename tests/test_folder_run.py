"""A folder of colour images, trained end to end: train, resume, sample, walk, export."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import slow, tiny_config
from PIL import Image

from trainer import task, train
from trainer.errors import TrainerError

COLOURS = {"blues": (30, 30, 220), "reds": (220, 30, 30)}  # class 0, class 1


def make_folder(root, per_class=24, seed=0):
    """Two classes of 48x40 RGBA pictures: a coloured square on a transparent ground."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = np.zeros((48, 40, 4), np.uint8)
            top, left = rng.integers(0, 20, 2)
            pixels[top : top + 24, left : left + 20] = (*colour, 255)
            Image.fromarray(pixels, "RGBA").save(root / name / f"{index}.png")
    return str(root)


def folder_config(tmp_path, **changes):
    config = tiny_config(tmp_path)
    cache = str(tmp_path / "cache")
    return dataclasses.replace(
        config, dataset="folder", data_dir=make_folder(tmp_path / "images"), **changes
    ), cache


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    from trainer import folders

    monkeypatch.setattr(folders, "CACHE_DIR", str(tmp_path / "cache"))


def test_a_colour_folder_trains_and_its_checkpoint_records_the_spec(tmp_path, isolated_cache):
    config, _ = folder_config(tmp_path, train_steps=3, image_size=32, batch_size=8)
    result = train.run(config)
    assert result["step"] == 3
    saved = (tmp_path / "ckpt" / "config.json").read_text()
    assert '"dataset": "folder"' in saved and '"class_names": [\n        "blues"' in saved


def test_a_resume_on_another_data_set_is_refused(tmp_path, isolated_cache):
    config, _ = folder_config(tmp_path, train_steps=2, image_size=32, batch_size=8)
    train.run(config)
    other = dataclasses.replace(config, continue_train=True, dataset="mnist", image_size=None)
    with pytest.raises(TrainerError, match=r"cannot resume: .*dataset \(checkpoint folder"):
        train.run(other, images=np.zeros((16, 28, 28), np.uint8))


def test_conditional_without_classes_is_one_clear_line(tmp_path, isolated_cache):
    flat = tmp_path / "flat"
    flat.mkdir()
    for index in range(20):
        Image.new("RGB", (8, 8), (index, 0, 0)).save(flat / f"{index}.png")
    config = dataclasses.replace(
        tiny_config(tmp_path), dataset="folder", data_dir=str(flat), conditional=True
    )
    with pytest.raises(TrainerError, match="--conditional trains on classes, and .* has none"):
        train.run(config)
    assert not (tmp_path / "ckpt").exists()


def test_too_few_images_for_a_batch_is_one_clear_line(tmp_path, isolated_cache):
    config, _ = folder_config(tmp_path, batch_size=64)  # 48 images
    with pytest.raises(TrainerError, match="48 training images is less than one batch of 64"):
        train.run(config)


@slow
def test_a_64x64_colour_run_trains_resumes_samples_walks_and_exports(
    tmp_path, isolated_cache, capsys
):
    images = make_folder(tmp_path / "images")
    run = ["--checkpoint-dir", str(tmp_path / "ckpt")]
    tiny = ["--batch-size", "8", "--latent-dim", "8", "--generator-width", "4"]
    tiny += ["--discriminator-width", "4", "--r1-interval", "1", "--eval-samples", "0"]
    argv = ["--dataset", "folder", "--data-dir", images, "--log-dir", str(tmp_path / "logs")]
    assert task.main(argv + run + tiny + ["--conditional", "--train-steps", "4"]) == 0
    assert task.main(argv + run + ["--continue-train", "True", "--train-steps", "6"]) == 0
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-6")
    samples = ["--sample-dir", str(tmp_path / "samples")]
    assert task.main(["--sample", "5", "--class", "reds"] + run + samples) == 0  # class 1
    with Image.open(tmp_path / "samples" / "sample_00000_digit1.png") as image:
        assert image.size == (64, 64) and image.mode == "RGB"
    assert task.main(["--sample", "5", "--class", "greens"] + run + samples) == 1
    assert "--class 'greens' is not one of the classes" in capsys.readouterr().err
    assert task.main(["--interpolate", "2", "--gif"] + run + samples) == 0
    assert os.path.exists(tmp_path / "samples" / "interpolation_digits.gif")
    assert task.main(["--export", str(tmp_path / "export")] + run) == 0
    served = tf.saved_model.load(str(tmp_path / "export" / "6"))
    z = tf.zeros([2, 8])
    answer = served.signatures["serving_default"](z=z, digits=tf.constant([0, 1]))["images"]
    assert answer.shape == (2, 64, 64, 3)


def test_a_conditional_folder_run_draws_each_class_in_its_colour(tmp_path, isolated_cache):
    config, _ = folder_config(
        tmp_path,
        conditional=True,
        image_size=32,
        batch_size=16,
        train_steps=120,
        ema_decay=0.0,
        generator_width=8,
        discriminator_width=8,
        mode_seeking=0.0,
    )
    train.run(config)
    from trainer import generation, loaders

    generator, _ = loaders.load_sampler(config.checkpoint_dir)
    means = {}
    for label, name in enumerate(COLOURS):  # blues 0, reds 1
        labels = np.full(64, label, np.int32)
        pixels = np.concatenate(list(generation.generate(generator, 64, 8, 0, labels=labels)))
        means[name] = pixels.reshape(-1, 3).mean(axis=0)  # mean R, G, B
    # Each class's samples lean to its own colour: more blue than red, and the reverse.
    assert means["blues"][2] > means["blues"][0] + 10, means
    assert means["reds"][0] > means["reds"][2] + 10, means


def test_evaluating_a_folder_model_offline_says_so_and_gives_the_copy_check(
    tmp_path, isolated_cache, monkeypatch, caplog
):
    from trainer.evaluation import evaluate, folder_eval

    config, _ = folder_config(tmp_path, train_steps=2, image_size=32, batch_size=8)
    train.run(config)

    def offline():
        raise Exception("URL fetch failure on inception_v3_weights: no network")

    monkeypatch.setattr(folder_eval, "inception_features", offline)
    with caplog.at_level("WARNING"):
        results = evaluate.run(config.data_dir, 20, 0, checkpoint_dir=config.checkpoint_dir)
    assert results["frechet_inception_distance"] is None
    assert "no Frechet Inception distance" in caplog.text and "no network" in caplog.text
    assert results["memorization"]["generated"]["count"] == 20
    assert "not measured (URL fetch failure" in evaluate.format_table(results)


def test_the_inception_distance_is_measured_against_half_the_folder(tmp_path, isolated_cache):
    from trainer.evaluation import folder_eval

    config, _ = folder_config(tmp_path, train_steps=2, image_size=32, batch_size=8)
    train.run(config)

    def mean_colour(images):  # a stand-in feature: each image's mean R, G, B
        return np.asarray(images, np.float32).reshape(len(images), -1, 3).mean(axis=1)

    results = folder_eval.run(config.checkpoint_dir, config.data_dir, 24, 0, mean_colour)
    assert results["real_floor"] < results["frechet_inception_distance"]  # 2 steps: far off
    assert results["fd_over_floor"] == pytest.approx(
        results["frechet_inception_distance"] / results["real_floor"]
    )
    assert "Frechet Inception distance" in folder_eval.format_table(results)


def test_probing_a_folder_model_is_one_clear_line(tmp_path, isolated_cache, capsys):
    config, _ = folder_config(tmp_path, train_steps=2, image_size=32, batch_size=8)
    train.run(config)
    assert task.main(["--probe", "--checkpoint-dir", config.checkpoint_dir]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--probe needs a labelled test set" in err[0], err
