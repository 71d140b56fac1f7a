"""A labelled folder's judge: trained by the classifier command, used by --evaluate --judge."""

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest
from PIL import Image
from test_folder_run import COLOURS, folder_config, make_folder

from trainer import folders, task, train
from trainer.errors import TrainerError
from trainer.evaluation import classifier, evaluate, folder_eval, folder_judge
from trainer.image_spec import ImageSpec


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def offline(monkeypatch):
    def no_network():
        raise Exception("URL fetch failure on inception_v3_weights: no network")

    monkeypatch.setattr(folder_eval, "inception_features", no_network)


def test_split_holds_out_a_share_of_each_class_the_same_way_each_time():
    labels = np.array([0] * 20 + [1] * 7 + [2] * 2)
    train_rows, held = folder_judge.split(labels, seed=3)
    assert np.bincount(labels[held]).tolist() == [3, 1, 1]  # 15% rounded, at least one
    assert sorted(np.concatenate([train_rows, held]).tolist()) == list(range(len(labels)))
    again_train, again_held = folder_judge.split(labels, seed=3)
    assert held.tolist() == again_held.tolist() and train_rows.tolist() == again_train.tolist()
    assert folder_judge.split(labels, seed=4)[1].tolist() != held.tolist()


def test_split_refuses_a_class_of_one_image():
    with pytest.raises(TrainerError, match="class 1 has 1 image.*at least 2 of each class"):
        folder_judge.split(np.array([0, 0, 0, 1]))


def test_the_info_file_sits_beside_the_weights():
    assert folder_judge.info_path("runs/emoji-judge.weights.h5") == "runs/emoji-judge.json"
    assert folder_judge.info_path("judge.h5") == "judge.json"


@pytest.mark.parametrize("side, blocks", [(28, 2), (32, 2), (64, 3)])
def test_the_classifier_pools_each_size_down_to_at_most_8_pixels(side, blocks):
    model = classifier.build_classifier(ImageSpec(side, side, 3, ("a", "b", "c")))
    pools = [layer for layer in model.layers if "pooling" in type(layer).__name__.lower()]
    assert len(pools) == blocks
    assert pools[-1].output.shape[1] <= 8 < pools[-1].input.shape[1]
    assert model.outputs[0].shape[-1] == 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A judge of two classes of coloured squares, trained once through the command:
    (the folder, the weights' path, what the command printed)."""
    root = tmp_path_factory.mktemp("judge")
    images = make_folder(root / "images", per_class=40)
    output = str(root / "judges" / "squares-judge.weights.h5")
    argv = ["--dataset", "folder", "--data-dir", images, "--image-size", "32"]
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()) as out:
        patch.setattr(folders, "CACHE_DIR", str(root / "cache"))
        assert classifier.main(argv + ["--epochs", "40", "--output", output]) == 0
    return images, output, out.getvalue()


def test_the_classifier_command_trains_a_folder_judge_and_says_how_to_use_it(trained):
    _, output, printed = trained
    with open(folder_judge.info_path(output)) as f:
        info = json.load(f)
    assert info["image"]["class_names"] == list(COLOURS) and info["image"]["height"] == 32
    assert info["images"] == 80 and info["held_out_images"] == 12
    # Blue squares against red ones: the judge tells them apart on images it never saw.
    assert info["held_out_accuracy"] >= 0.9
    assert f"--judge {output}" in printed
    judge, _ = folder_judge.load(output, ImageSpec.from_dict(info["image"]), 80)
    blue, red = (np.full((1, 32, 32, 3), colour, np.uint8) for colour in COLOURS.values())
    assert judge(blue)[1].argmax() == 0 and judge(red)[1].argmax() == 1


def test_a_folder_without_classes_gets_no_judge(tmp_path, isolated_cache, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    for index in range(10):
        Image.new("RGB", (8, 8), (index, 0, 0)).save(flat / f"{index}.png")
    argv = ["--dataset", "folder", "--data-dir", str(flat), "--output", str(tmp_path / "j.h5")]
    assert classifier.main(argv) == 1
    assert "has no classes: a judge learns the classes" in capsys.readouterr().err
    assert not (tmp_path / "j.h5").exists()


def test_a_judge_of_other_images_or_of_a_changed_folder_is_refused(trained, tmp_path):
    _, output, _ = trained
    spec = ImageSpec(32, 32, 3, tuple(COLOURS))
    with pytest.raises(TrainerError, match="judges 32x32 colour .* but the model makes 64x64"):
        folder_judge.load(output, dataclasses.replace(spec, height=64, width=64), 80)
    with pytest.raises(TrainerError, match=r"classes \['blues', 'reds'\], but .*'greens'"):
        folder_judge.load(output, dataclasses.replace(spec, class_names=("blues", "greens")), 80)
    with pytest.raises(TrainerError, match="held 80 images; it holds 81 now"):
        folder_judge.load(output, spec, 81)
    with pytest.raises(TrainerError, match="no judge there"):
        folder_judge.load(str(tmp_path / "missing.weights.h5"), spec, 80)


def test_evaluate_judges_a_conditional_folder_model_class_by_class(
    trained, tmp_path, isolated_cache, offline, capsys
):
    images, output, _ = trained
    config, _ = folder_config(
        tmp_path / "run", conditional=True, train_steps=2, image_size=32, batch_size=8
    )
    config = dataclasses.replace(config, data_dir=images)
    train.run(config)
    argv = ["--evaluate", "--data-dir", images, "--checkpoint-dir", config.checkpoint_dir]
    assert task.main(argv + ["--judge", output, "--num-eval-samples", "40"]) == 0
    table, line = capsys.readouterr().out.strip().rsplit("\n", 1)
    results = json.loads(line)
    floor, generated = results["real_floor"], results["generated"]
    # The floor is real squares the judge did not see, judged against the 12 it held out:
    # sure of their class, near them; two steps of training are far from both.
    assert floor["confident_share"] >= 0.9 and floor["count"] == 68
    assert floor["frechet_distance"] < generated["frechet_distance"]
    assert len(results["per_digit"]["generated"]["labelled_as_asked"]) == 2
    assert results["memorization"]["test"]["count"] == 12  # the held-out images
    for text in (
        "  class blues",
        "  class reds",
        "shares (generated)  blues:",
        "generated    held-out",
    ):
        assert text in table
    assert "Frechet Inception distance: not measured" in table


def test_judge_is_refused_for_a_model_of_a_named_data_set(tmp_path):
    from helpers import tiny_config

    config = tiny_config(tmp_path)
    config = dataclasses.replace(config, train_steps=1)
    train.run(config, images=np.zeros((16, 28, 28), np.uint8))
    with pytest.raises(TrainerError, match="--judge is for models of an image folder"):
        evaluate.run(None, 20, 0, checkpoint_dir=config.checkpoint_dir, judge_path="j.h5")
