import dataclasses
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO, TINY_FLAGS, assert_usage_error, flat_config, slow

from trainer import flags as cli_flags
from trainer import task
from trainer.errors import TrainerError
from trainer.train_config import ENVIRONMENT_FIELDS, TrainConfig

SHIPPED = os.path.join(REPO, "MNIST-trained-model")

TINY = [*TINY_FLAGS, "--seed", "1"]


def flags(tmp_path, *extra):
    return [
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--log-dir",
        str(tmp_path / "logs"),
        "--sample-dir",
        str(tmp_path / "samples"),
        *TINY,
        *extra,
    ]


@pytest.mark.parametrize(
    "text, value",
    [
        ("True", True),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        ("False", False),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("NO", False),
    ],
)
def test_continue_train_spellings(text, value):
    args = cli_flags.build_parser().parse_args(["--continue-train", text])
    assert args.continue_train is value


def test_bare_continue_train_flag_means_true():
    assert cli_flags.build_parser().parse_args(["--continue-train"]).continue_train is True


def test_only_given_flags_override_defaults():
    config = cli_flags.resolve(cli_flags.build_parser().parse_args(["--batch-size", "64"]))
    assert config == TrainConfig(batch_size=64)


def test_a_folder_run_takes_the_networks_of_its_image_size_unless_flags_say_otherwise():
    def nets(*argv):
        config = cli_flags.resolve(cli_flags.build_parser().parse_args(list(argv)))
        widths = (config.generator_width, config.discriminator_width)
        return widths + (config.generator_depth, config.discriminator_depth)

    assert nets() == nets("--dataset", "fashion-mnist") == (96, 64, 1, 2)
    assert nets("--dataset", "folder") == nets("--dataset", "folder", "--image-size", "64")
    assert nets("--dataset", "folder") == (64, 64, 0, 0)
    assert nets("--dataset", "folder", "--image-size", "32") == (64, 64, 1, 1)
    given = ["--dataset", "folder", "--generator-width", "128", "--discriminator-depth", "2"]
    assert nets(*given) == (128, 64, 0, 2)
    assert nets("--dataset", "folder", "--conditional")[:2] == (64, 64)


def test_a_conditional_run_trains_14_epochs_the_last_12_decaying_with_both_terms():
    def config(*argv):
        return cli_flags.resolve(cli_flags.build_parser().parse_args(list(argv)))

    assert config().discriminator_learning_rate == 2e-4
    assert (config().num_epochs, config().lr_decay_epochs, config().mode_seeking) == (
        40,
        10,
        0.0,
    )
    conditional = config("--conditional")
    assert conditional == TrainConfig(
        conditional=True,
        num_epochs=14,
        lr_decay_epochs=12,
        mode_seeking=1.0,
        mode_seeking_bound="real",
        mismatch=0.15,
    )
    assert conditional.discriminator_learning_rate == 2e-4
    assert config(
        "--conditional",
        "--num-epochs",
        "30",
        "--lr-decay-epochs",
        "0",
        "--mode-seeking",
        "0",
        "--projection",
        "true",
    ) == TrainConfig(
        conditional=True,
        num_epochs=30,
        lr_decay_epochs=0,
        mode_seeking_bound="real",
        projection=True,
        mismatch=0.15,
    )
    assert config("--conditional", "--mode-seeking-bound", "none").mode_seeking_bound == "none"
    assert config("--conditional", "--d-learning-rate", "1e-3").d_learning_rate == 1e-3
    assert config("--conditional", "--mismatch", "0.5").mismatch == 0.5
    assert config("--conditional", "--mismatch", "0").mismatch == 0.0


def test_job_dir_moves_the_default_folders():
    args = cli_flags.build_parser().parse_args(["--job-dir", "gs-job", "--log-dir", "mine"])
    config = cli_flags.resolve(args)
    assert config.checkpoint_dir == os.path.join("gs-job", "checkpoints")
    assert config.sample_dir == os.path.join("gs-job", "samples")
    assert config.log_dir == "mine"


VERTEX = {
    "AIP_CHECKPOINT_DIR": "gs://b/job/checkpoints/",
    "AIP_TENSORBOARD_LOG_DIR": "gs://b/job/logs/",
    "AIP_MODEL_DIR": "gs://b/job/model/",
    "HOME": "/root",
}


def resolved(argv, environ):
    return cli_flags.resolve(cli_flags.build_parser().parse_args(argv), environ)


def test_vertex_ai_variables_set_the_folders_no_flag_names():
    config = resolved(["--batch-size", "64"], VERTEX)
    assert config == TrainConfig(
        batch_size=64,
        checkpoint_dir="gs://b/job/checkpoints/",
        log_dir="gs://b/job/logs/",
        model_dir="gs://b/job/model/",
    )
    # Without them (or with them empty) nothing changes, and nothing is published.
    assert resolved([], {}) == resolved([], None) == TrainConfig()
    assert resolved([], {"AIP_CHECKPOINT_DIR": ""}) == TrainConfig()
    assert TrainConfig().model_dir is None


def test_flags_and_the_job_dir_win_over_vertex_ai_variables():
    config = resolved(["--checkpoint-dir", "mine"], VERTEX)
    assert (config.checkpoint_dir, config.log_dir) == ("mine", "gs://b/job/logs/")
    config = resolved(["--job-dir", "gs://b/other"], VERTEX)
    assert config.checkpoint_dir == os.path.join("gs://b/other", "checkpoints")
    assert config.log_dir == os.path.join("gs://b/other", "summary")
    assert config.model_dir == "gs://b/job/model/"  # --job-dir has no model folder


def test_vertex_ai_checkpoint_folder_is_the_one_a_resume_reads(tmp_path):
    (tmp_path / "config.json").write_text(TrainConfig(batch_size=32, seed=5).to_json())
    config = resolved(
        ["--continue-train"],
        {"AIP_CHECKPOINT_DIR": str(tmp_path), "AIP_MODEL_DIR": "gs://b/job/model/"},
    )
    assert config == TrainConfig(
        batch_size=32,
        seed=5,
        checkpoint_dir=str(tmp_path),
        model_dir="gs://b/job/model/",
        continue_train=True,
    )


def resume_flags(tmp_path, idx_dir):
    """A resume's folders: config.json keeps the hyperparameters, not where things are."""
    return [
        "--continue-train",
        "True",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--data-dir",
        idx_dir,
        "--log-dir",
        str(tmp_path / "logs"),
    ]


@slow
def test_train_resume_and_sample_through_the_cli(tmp_path, idx_dir, capsys):
    assert task.main(["--data-dir", idx_dir, "--train-steps", "3", *flags(tmp_path)]) == 0
    # The resumed run takes the widths, batch size and the rest from the saved config.
    assert task.main([*resume_flags(tmp_path, idx_dir), "--train-steps", "5"]) == 0
    assert tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-5")
    assert (
        task.main(
            [
                "--sample",
                "7",
                "--checkpoint-dir",
                str(tmp_path / "ckpt"),
                "--sample-dir",
                str(tmp_path / "samples"),
            ]
        )
        == 0
    )
    assert len(os.listdir(tmp_path / "samples")) == 8  # 7 samples and grid.png
    assert "wrote 7 samples" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
        (["--num-epochs", "-3"], "--num-epochs must be a positive integer, got -3"),
        (["--train-steps", "0"], "--train-steps must be a positive integer"),
        (["--learning-rate", "0"], "--learning-rate must be > 0"),
        (["--beta1", "1.5"], "--beta1 must be in [0, 1)"),
        (["--latent-dim", "0"], "--latent-dim must be a positive integer"),
        (["--log-freq", "0"], "--log-freq must be a positive integer"),
        (["--checkpoint-freq", "0"], "--checkpoint-freq must be a positive integer"),
        (["--seed", "-2"], "--seed must be a non-negative integer"),
        (["--sample", "0"], "--sample must be at least 1, got 0"),
        (["--num-eval-samples", "3"], "--num-eval-samples must be at least 10"),
        (["--eval-samples", "-1"], "--eval-samples must be 0 (off) or at least 10"),
        (["--batch-size", "many"], "invalid int value: 'many'"),
        (["--learning-rate", "fast"], "invalid float value: 'fast'"),
        (["--continue-train", "maybe"], "expected True or False, got 'maybe'"),
        (["--wings", "2"], "unrecognized arguments: --wings 2"),
        (["--generator-width", "0"], "--generator-width must be a positive integer"),
        (
            ["--discriminator-width", "-8"],
            "--discriminator-width must be a positive integer",
        ),
        (["--r1-gamma", "-1"], "--r1-gamma must be >= 0"),
        (["--ema-decay", "1"], "--ema-decay must be in [0, 1)"),
        (["--sample", "lots"], "invalid int value: 'lots'"),
        (["--num-epochs", "ten"], "invalid int value: 'ten'"),
        (["--seed", "1.5"], "invalid int value: '1.5'"),
        (["--train-steps", "-5"], "--train-steps must be a positive integer"),
        (["--batch-size"], "expected one argument"),
        (["--d-learning-rate", "-0.001"], "--d-learning-rate must be > 0"),
        (["--d-learning-rate", "quick"], "invalid float value: 'quick'"),
        (["--r1-interval", "0"], "--r1-interval must be a positive integer, got 0"),
        (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1)"),
        (["--label-smoothing", "-0.1"], "--label-smoothing must be in [0, 1)"),
        (["--precision", "float16"], "invalid choice: 'float16' (choose from"),
        (["--arch", "resnet"], "invalid choice: 'resnet' (choose from"),
        (["--latent-distribution", "cauchy"], "invalid choice: 'cauchy' (choose from"),
        (["--lr-decay-epochs", "-1"], "--lr-decay-epochs must be a non-negative integer"),
        (["--generator-depth", "-1"], "--generator-depth must be a non-negative integer"),
        (["--discriminator-depth", "two"], "invalid int value: 'two'"),
        (
            ["--sample", "4", "--probe", "--batch-size", "8"],
            "--sample and --probe are separate modes",
        ),
        (
            ["--sample", "4", "--batch-size", "8"],
            "--batch-size applies to training only, not to --sample",
        ),
        (
            ["--evaluate", "--continue-train", "True"],
            "--continue-train applies to training only, not to --evaluate",
        ),
        (
            ["--progress-gif", "--checkpoint-dir", "x"],
            "--checkpoint-dir does not apply to --progress-gif",
        ),
        (["--num-eval-samples", "100"], "--num-eval-samples only applies with --evaluate"),
        (["--digit", "3"], "--digit only applies with --sample or --interpolate"),
        (
            ["--sample", "4", "--conditional"],
            "--conditional applies to training only, not to --sample",
        ),
        (["--arch", "mlp", "--conditional"], "--conditional needs the dcgan networks"),
        (["--strategy", "nccl"], "invalid choice: 'nccl' (choose from"),
        (
            ["--sample", "4", "--strategy", "one"],
            "--strategy applies to training only, not to --sample",
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(argv, message, capsys):
    assert_usage_error(task.main, argv, message, capsys)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing data", "is not a folder"),
        ("empty data", "no MNIST train data"),
        ("corrupt data", "not an MNIST IDX file"),
        ("resume nothing", "no config.json"),
        ("sample nothing", "no checkpoint in"),
        ("unwritable", "--log-dir"),
        ("unwritable checkpoints", "--checkpoint-dir"),
        ("unwritable samples", "--sample-dir"),
    ],
)
def test_runtime_errors_exit_1_with_one_line(case, message, tmp_path, idx_dir, capsys):
    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "train-images-idx3-ubyte").write_bytes(b"\0" * 100)
    (corrupt / "train-labels-idx1-ubyte").write_bytes(b"\0" * 100)
    (tmp_path / "file").write_text("")
    argv = {
        "missing data": ["--data-dir", str(tmp_path / "nope")],
        "empty data": ["--data-dir", str(tmp_path / "empty")],
        "corrupt data": ["--data-dir", str(corrupt)],
        "resume nothing": flags(tmp_path, "--continue-train", "True"),
        "sample nothing": ["--sample", "3", "--checkpoint-dir", str(tmp_path / "ckpt")],
        "unwritable": flags(tmp_path, "--data-dir", idx_dir, "--log-dir", str(tmp_path / "file/x")),
        "unwritable checkpoints": flags(
            tmp_path, "--data-dir", idx_dir, "--checkpoint-dir", str(tmp_path / "file/x")
        ),
        "unwritable samples": [
            "--sample",
            "2",
            "--checkpoint-dir",
            SHIPPED,
            "--sample-dir",
            str(tmp_path / "file/x"),
        ],
    }[case]
    assert task.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("error: ") and message in err[0]


@slow
def test_fresh_run_over_checkpoints_is_refused_and_names_the_ways_out(tmp_path, idx_dir, capsys):
    assert task.main(["--data-dir", idx_dir, "--train-steps", "2", *flags(tmp_path)]) == 0
    assert task.main(["--data-dir", idx_dir, "--train-steps", "2", *flags(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "--continue-train True" in err and "--overwrite" in err


def _start(tmp_path, idx_dir):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainer.task",
            "--data-dir",
            idx_dir,
            "--train-steps",
            "100000",
            "--log-freq",
            "1",
            *flags(tmp_path),
        ],
        cwd=str(tmp_path),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_help_explains_every_flag():
    actions = [a for a in cli_flags.build_parser()._actions if a.dest != "help"]
    flags = {a.option_strings[0]: a.help for a in actions}
    # Every config field the command line sets has its flag, with the field's own help.
    for field in dataclasses.fields(TrainConfig):
        if field.metadata["flag"]:
            flag = "--" + field.name.replace("_", "-")
            assert flags[flag].startswith(field.metadata["help"]), flag
    for flag, text in flags.items():
        assert text and len(text.split()) >= 4, f"{flag} has no help of its own: {text!r}"
    assert len(set(flags.values())) == len(flags), "two flags share one help text"
    out = subprocess.run(  # unwrapped, so each help text reads whole
        [sys.executable, "-m", "trainer.task", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "100000"},
    ).stdout
    for flag, text in flags.items():
        assert out.count(text) == 1, f"{flag}'s help shows {out.count(text)} times"


@pytest.mark.skipif(
    shutil.which("dcgan-mnist") is None,
    reason="dcgan-mnist not on PATH: install with pip install -e .",
)
def test_console_script_runs_the_same_cli():
    result = subprocess.run(["dcgan-mnist", "--batch-size", "0"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "--batch-size must be a positive integer" in result.stderr


@slow  # two training processes
def test_second_run_on_a_live_runs_folder_is_refused(tmp_path, idx_dir, capsys):
    process = _start(tmp_path, idx_dir)
    try:
        for line in process.stderr:  # wait until the first run holds the folder
            if "step 2/" in line:
                break
        assert task.main(resume_flags(tmp_path, idx_dir)) == 1
        err = capsys.readouterr().err
        assert f"in use by another training run (pid {process.pid})" in err
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)


@pytest.mark.parametrize(
    "tf_config, strategy, message",
    [
        ("", "multi-worker", "--strategy multi-worker needs TF_CONFIG naming the cluster"),
        ('{"cluster": ', "auto", "TF_CONFIG is not the JSON TensorFlow expects"),
    ],
)
def test_a_strategy_this_environment_cannot_give_is_one_line(
    tf_config, strategy, message, tmp_path, idx_dir, monkeypatch, capsys
):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    assert task.main(["--data-dir", idx_dir, "--strategy", strategy, *flags(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "ckpt").exists()  # refused before anything was written


def test_the_log_names_the_strategy_and_its_replicas(tmp_path, idx_dir, caplog, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with caplog.at_level("INFO"):
        assert task.main(["--data-dir", idx_dir, "--train-steps", "2", *flags(tmp_path)]) == 0
    assert "strategy: default strategy, 1 replica" in caplog.text


def test_mlp_uniform_run_through_the_cli_and_probe_without_data(tmp_path, idx_dir, capsys):
    assert (
        task.main(
            [
                "--data-dir",
                idx_dir,
                "--train-steps",
                "3",
                "--arch",
                "mlp",
                "--latent-distribution",
                "uniform",
                *flags(tmp_path),
            ]
        )
        == 0
    )
    saved = TrainConfig.from_json((tmp_path / "ckpt" / "config.json").read_text())
    assert (saved.arch, saved.latent_distribution) == ("mlp", "uniform")
    # The blob data has no test split: --probe says what is missing, in one line.
    assert (
        task.main(["--probe", "--data-dir", idx_dir, "--checkpoint-dir", str(tmp_path / "ckpt")])
        == 1
    )
    assert "no MNIST test data" in capsys.readouterr().err


# --- a checkpoint folder resumes on any machine ------------------------------------------


def test_a_resume_takes_its_folders_from_its_flags_not_from_config_json(tmp_path):
    old = dict(
        flat_config(TrainConfig(batch_size=32, seed=5)),
        data_dir="../shared/mnist",
        log_dir="old/logs",
        sample_dir="old/samples",
        checkpoint_dir="old/ckpt",
        continue_train=False,
        overwrite=True,
    )
    (tmp_path / "config.json").write_text(json.dumps(old))
    args = cli_flags.build_parser().parse_args(
        ["--continue-train", "--checkpoint-dir", str(tmp_path), "--log-dir", "here/logs"]
    )
    assert cli_flags.resolve(args) == TrainConfig(
        batch_size=32,
        seed=5,
        checkpoint_dir=str(tmp_path),
        log_dir="here/logs",
        continue_train=True,
    )  # data_dir None: the Keras cache, as a fresh run


@slow  # one step of the shipped, default-size networks
@pytest.mark.parametrize("data", ["--data-dir", "the Keras cache"])
def test_a_copy_of_the_shipped_model_resumes_on_a_machine_without_its_data_folder(
    data, tmp_path, idx_dir, blob_images, monkeypatch, caplog
):
    monkeypatch.chdir(tmp_path)  # no ../shared/mnist here, as on a fresh clone
    folder = str(tmp_path / "model")
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns(".trainer.lock"))
    step = int(tf.train.latest_checkpoint(folder).rsplit("-", 1)[1])
    argv = [
        "--continue-train",
        "True",
        "--checkpoint-dir",
        folder,
        "--train-steps",
        str(step + 1),
    ]
    if data == "--data-dir":
        argv += ["--data-dir", idx_dir]
    else:  # no --data-dir: ~/.keras/datasets/mnist.npz, as a fresh run reads it
        cache = tmp_path / "home" / ".keras" / "datasets"
        cache.mkdir(parents=True)
        np.savez(
            cache / "mnist.npz",
            x_train=blob_images,
            y_train=np.zeros(len(blob_images), np.uint8),
        )
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with caplog.at_level("INFO"):
        assert task.main(argv) == 0
    assert f"resumed from step {step}" in caplog.text
    assert "epochs of 2 steps" in caplog.text  # the 160 blob images, 64 a batch
    assert tf.train.latest_checkpoint(folder).endswith(f"ckpt-{step + 1}")
    written = json.loads((tmp_path / "model" / "config.json").read_text())
    assert sorted(written) == ["model", "training"]  # no folders
    assert not set(ENVIRONMENT_FIELDS) & (set(written["model"]) | set(written["training"]))
    assert written["training"]["train_steps"] == step + 1
    assert os.listdir(tmp_path / "trainer" / "summary")  # the default --log-dir, here


# --- each mode uses its own flags, and refuses the rest ---------------------------------

MODE_ARGV = {
    "--sample": ["--sample", "4"],
    "--evaluate": ["--evaluate"],
    "--interpolate": ["--interpolate", "3"],
    "--progress-gif": ["--progress-gif"],
    "--probe": ["--probe"],
    "--export": ["--export", "dir"],
}
# What task.py hands each mode; every other flag is refused with it.
MODE_USES = {
    "--sample": {
        "--checkpoint-dir",
        "--sample-dir",
        "--seed",
        "--digit",
        "--dataset",
        "--job-dir",
    },
    "--evaluate": {
        "--checkpoint-dir",
        "--data-dir",
        "--seed",
        "--num-eval-samples",
        "--judge",
        "--dataset",
        "--job-dir",
    },
    "--interpolate": {
        "--checkpoint-dir",
        "--sample-dir",
        "--seed",
        "--slerp",
        "--gif",
        "--digit",
        "--dataset",
        "--job-dir",
    },
    "--progress-gif": {"--log-dir", "--job-dir"},
    "--probe": {"--checkpoint-dir", "--data-dir", "--job-dir"},
    "--export": {"--checkpoint-dir", "--overwrite", "--tflite", "--job-dir"},
}
# Options of one mode, not of training.
MODE_OPTIONS = {"--slerp", "--gif", "--num-eval-samples", "--judge", "--tflite", "--digit"}


def given(flag):
    """argv giving `flag` a valid value."""
    action = next(a for a in cli_flags.build_parser()._actions if flag in a.option_strings)
    if action.nargs == 0:
        return [flag]
    if action.choices:
        return [flag, str(action.choices[-1])]
    if flag == "--digit":
        return [flag, "7"]
    value = {int: "20", float: "0.5", cli_flags.parse_bool: "True"}.get(action.type, "dir")
    return [flag, value]


def all_flags():
    return [
        a.option_strings[0]
        for a in cli_flags.build_parser()._actions
        if a.option_strings and a.dest != "help"
    ]


@pytest.mark.parametrize("mode", sorted(MODE_ARGV))
def test_each_mode_accepts_the_flags_it_uses(mode):
    argv = MODE_ARGV[mode] + [word for flag in sorted(MODE_USES[mode]) for word in given(flag)]
    args = cli_flags.build_parser().parse_args(argv)
    cli_flags.check_modes(args)  # raises ValueError on a refused flag
    cli_flags.resolve(args)  # and the mode's own options stay out of the TrainConfig


@pytest.mark.parametrize("mode", sorted(MODE_ARGV))
def test_each_mode_refuses_every_flag_it_does_not_use(mode, capsys):
    refused = [f for f in all_flags() if f not in MODE_ARGV and f not in MODE_USES[mode]]
    assert "--batch-size" in refused and "--continue-train" in refused
    for flag in refused:
        with pytest.raises(SystemExit) as exit_info:
            task.main(MODE_ARGV[mode] + given(flag))
        assert exit_info.value.code == 2, flag
        err = capsys.readouterr().err.strip().splitlines()[-1]
        if flag in MODE_OPTIONS:
            modes = " or ".join(m for m in MODE_USES if flag in MODE_USES[m])
            assert err.endswith(f"error: {flag} only applies with {modes}")
        elif any(flag in uses for uses in MODE_USES.values()):
            assert err.endswith(f"error: {flag} does not apply to {mode}")
        else:
            assert err.endswith(f"error: {flag} applies to training only, not to {mode}")


@pytest.mark.parametrize("first, second", itertools.combinations(sorted(MODE_ARGV), 2))
def test_two_modes_are_a_usage_error_naming_both(first, second, capsys):
    with pytest.raises(SystemExit) as exit_info:
        task.main(MODE_ARGV[first] + MODE_ARGV[second])
    assert exit_info.value.code == 2
    assert f"error: {first} and {second} are separate modes" in capsys.readouterr().err


def test_dataset_picks_its_shipped_model_and_a_model_of_another_set_is_refused(
    tmp_path, capsys, monkeypatch
):
    def resolve(*argv):
        return cli_flags.resolve(cli_flags.build_parser().parse_args(list(argv)))

    assert resolve("--dataset", "fashion-mnist").dataset == "fashion-mnist"  # a training run
    folder = tmp_path / "mnist-model"
    folder.mkdir()
    (folder / "config.json").write_text(TrainConfig().to_json())  # an MNIST model's
    cli_flags.check_dataset(str(folder), "mnist")
    with pytest.raises(TrainerError, match="was trained on mnist, not fashion-mnist"):
        cli_flags.check_dataset(str(folder), "fashion-mnist")
    argv = ["--interpolate", "2", "--dataset", "fashion-mnist", "--checkpoint-dir", str(folder)]
    assert task.main(argv) == 1
    assert "was trained on mnist, not fashion-mnist" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # where the shipped models' folders are relative to
    shipped = tmp_path / "MNIST-trained-model" / "fashion-mnist"
    for mode in (["--sample", "4"], ["--interpolate", "2"], ["--evaluate"]):
        assert task.main(mode + ["--dataset", "fashion-mnist"]) == 1
        assert "no fashion-mnist model ships in" in capsys.readouterr().err  # and how to train one
    shipped.mkdir(parents=True)
    (shipped / "config.json").write_text(TrainConfig(dataset="fashion-mnist").to_json())
    config = resolve("--sample", "4", "--dataset", "fashion-mnist")
    assert config.checkpoint_dir == os.path.join("MNIST-trained-model", "fashion-mnist")
    assert resolve("--sample", "4").checkpoint_dir == "MNIST-trained-model"
    # --class asks the data set's own model, not the MNIST conditional --digit reads.
    config = resolve("--sample", "4", "--dataset", "fashion-mnist", "--class", "Dress")
    assert config.checkpoint_dir == os.path.join("MNIST-trained-model", "fashion-mnist")
    config = resolve("--sample", "4", "--digit", "7")
    assert config.checkpoint_dir == os.path.join("MNIST-trained-model", "conditional")
