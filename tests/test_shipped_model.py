"""The trained model this repository ships in MNIST-trained-model/."""

import glob
import json
import os
import subprocess
import sys

import numpy as np

from trainer import checkpoints, sample
from trainer.evaluation import classifier, evaluate
from trainer.train_config import ENVIRONMENT_FIELDS, TrainConfig, load_saved_config

from helpers import MNIST_DIR, REPO, needs_mnist, slow

SHIPPED = os.path.join(REPO, "MNIST-trained-model")
# Guards against shipping a worse model: the committed model measured 0.940 confident,
# Frechet distance 0.649 and classifier score 9.45 on 10,000 samples (README).
CONFIDENT_AT_LEAST = 0.90


def test_ships_one_resumable_checkpoint_under_32_mb():
    assert len(glob.glob(os.path.join(SHIPPED, "ckpt-*.index"))) == 1
    assert os.path.exists(os.path.join(SHIPPED, "config.json"))
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(SHIPPED, "*")))
    assert size <= 32 * 1024 * 1024


def test_config_json_holds_the_run_not_this_machines_folders():
    with open(os.path.join(SHIPPED, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    assert not set(ENVIRONMENT_FIELDS) & set(saved)
    # The defaults are the shipped run's settings (README); it resolved to bfloat16.
    assert load_saved_config(SHIPPED) == TrainConfig(resolved_precision="bfloat16")


@slow
def test_fresh_clone_samples_64_digits_with_no_data(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), PYTHONPATH=REPO)  # no Keras MNIST cache
    out = tmp_path / "samples"
    subprocess.run([sys.executable, "-m", "trainer.task", "--sample", "64", "--sample-dir",
                    str(out)], cwd=REPO, env=env, check=True, capture_output=True)
    names = sorted(os.listdir(out))
    assert names == ["grid.png"] + [f"sample_{i:05d}.png" for i in range(64)]


@slow
def test_shipped_samples_are_confident_varied_digits():
    generator, config = checkpoints.load_sampler(SHIPPED)
    images = np.concatenate(list(sample.generate(generator, 2000, config.latent_dim, 0)))
    _, probs = classifier.load_judge()(images)
    shares = np.bincount(probs.argmax(axis=1), minlength=10) / len(probs)
    assert np.mean(probs.max(axis=1) > 0.9) >= CONFIDENT_AT_LEAST
    assert shares.min() >= 0.05 and shares.max() <= 0.15


@slow
@needs_mnist
def test_shipped_model_quality_on_10000_samples():
    results = evaluate.run(MNIST_DIR, 10_000, seed=0, checkpoint_dir=SHIPPED)
    generated = results["generated"]
    # The bar.
    assert results["fd_over_floor"] <= 8
    assert generated["classifier_score"] >= 8.8
    assert generated["precision"] >= 0.65 and generated["recall"] >= 0.82
    assert 0.07 <= generated["min_class_share"] and generated["max_class_share"] <= 0.13
    assert generated["confident_share"] >= 0.85
    # No worse than the committed model's measured figures (README), with noise margin:
    # Frechet distance 0.649 (1.14x the floor), score 9.45, precision 0.853, recall 0.847.
    assert results["fd_over_floor"] <= 1.4
    assert generated["classifier_score"] >= 9.3
    assert generated["precision"] >= 0.83 and generated["recall"] >= 0.83
