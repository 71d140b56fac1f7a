import dataclasses
import json

import pytest
from helpers import flat_config, resolved

from trainer import flags
from trainer.errors import TrainerError
from trainer.train_config import (
    ENVIRONMENT_FIELDS,
    ModelConfig,
    TrainConfig,
    TrainingConfig,
    defaults,
    load_saved_config,
    resolve_resume,
    save_config,
)


def test_defaults_keep_the_dcgan_papers_adam_for_the_discriminator():
    config = TrainConfig()
    assert (config.d_learning_rate, config.beta1) == (2e-4, 0.5)  # DCGAN paper
    assert (config.learning_rate, config.batch_size) == (1e-3, 64)  # measured, README
    assert config.latent_dim == 100
    assert config.checkpoint_dir == "MNIST-trained-model"
    assert config.log_dir == "trainer/summary"
    assert config.sample_dir == "trainer/samples"


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().batch_size = 3


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 0),
        ("batch_size", -4),
        ("num_epochs", 0),
        ("train_steps", 0),
        ("latent_dim", -1),
        ("generator_width", 0),
        ("discriminator_width", 0),
        ("log_freq", 0),
        ("checkpoint_freq", -10),
        ("learning_rate", 0.0),
        ("learning_rate", -1e-3),
        ("beta1", 1.0),
        ("beta1", -0.1),
        ("seed", -1),
        ("r1_gamma", -1.0),
        ("ema_decay", 1.0),
        ("batch_size", 2.5),
        ("learning_rate", "x"),
        ("d_learning_rate", 0.0),
        ("d_learning_rate", "x"),
        ("r1_interval", 0),
        ("label_smoothing", 1.0),
        ("label_smoothing", -0.5),
        ("precision", "float16"),
        ("lr_decay_epochs", -1),
        ("lr_decay_epochs", 2.5),
        ("generator_depth", -1),
        ("discriminator_depth", 1.5),
        ("resolved_precision", "auto"),
        ("resolved_precision", "float16"),
        ("conditional", "yes"),
        ("conditional", 1),
        ("mode_seeking", -0.5),
        ("mode_seeking", "x"),
        ("mismatch", -1.0),
        ("mismatch", "x"),
        ("mode_seeking_bound", "data"),
        ("mode_seeking_bound", None),
        ("projection", "yes"),
        ("projection", 1),
    ],
)
def test_bad_values_raise_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_json_round_trip_keeps_the_run_and_leaves_the_folders_out(tmp_path):
    config = TrainConfig(batch_size=64, train_steps=10, r1_gamma=0.5, xla=True)
    machine = dict(
        data_dir="d",
        checkpoint_dir=str(tmp_path),
        log_dir="l",
        sample_dir="s",
        model_dir="m",
        continue_train=True,
        overwrite=True,
    )
    save_config(dataclasses.replace(config, **machine), str(tmp_path))
    written = json.loads((tmp_path / "config.json").read_text())
    assert sorted(written) == ["model", "training"]  # the parts; no folders
    assert sorted(written["model"]) == sorted(f.name for f in dataclasses.fields(ModelConfig))
    assert sorted(written["training"]) == sorted(f.name for f in dataclasses.fields(TrainingConfig))
    assert written["training"]["train_steps"] == 10 and written["model"]["image"]["height"] == 28
    assert load_saved_config(str(tmp_path)) == config


def test_a_config_json_with_folders_loads_and_ignores_them(tmp_path):
    # As every config.json before the folders were left out, the shipped one included.
    old = flat_config(
        TrainConfig(
            data_dir="../shared/mnist",
            checkpoint_dir="x/ckpt",
            log_dir="x/logs",
            sample_dir="x/samples",
            continue_train=True,
            overwrite=True,
            batch_size=32,
            seed=7,
        )
    )
    assert set(ENVIRONMENT_FIELDS) <= set(old)
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert load_saved_config(str(tmp_path)) == TrainConfig(batch_size=32, seed=7)


def test_a_config_written_before_the_depth_and_decay_fields_rebuilds_its_run(tmp_path):
    old = flat_config(TrainConfig(generator_width=96))
    for field in ("generator_depth", "discriminator_depth", "lr_decay_epochs"):
        del old[field]
    (tmp_path / "config.json").write_text(json.dumps(old))
    config = load_saved_config(str(tmp_path))
    assert (config.generator_depth, config.discriminator_depth, config.lr_decay_epochs) == (
        0,
        0,
        0,
    )
    assert config.generator_width == 96


def test_unknown_field_in_saved_config_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text('{"batch_size": 64, "wings": 2}')
    with pytest.raises(TrainerError, match="wings"):
        load_saved_config(str(tmp_path))


def test_missing_saved_config_names_the_folder(tmp_path):
    with pytest.raises(TrainerError, match="no config.json"):
        load_saved_config(str(tmp_path))


def test_resume_keeps_saved_values_and_applies_given_flags():
    saved = TrainConfig(batch_size=64, num_epochs=5, learning_rate=1e-4)
    resumed = resolve_resume(saved, {"continue_train": True, "num_epochs": 9})
    assert resumed == dataclasses.replace(saved, continue_train=True, num_epochs=9)


def test_resume_with_other_architecture_names_the_differing_fields():
    saved = TrainConfig(latent_dim=100, generator_width=64)
    with pytest.raises(TrainerError) as err:
        resolve_resume(saved, {"latent_dim": 64, "generator_width": 64, "seed": 3})
    assert "latent_dim (checkpoint 100, flags 64)" in str(err.value)
    assert "generator_width" not in str(err.value)


def test_discriminator_learning_rate_follows_the_generators_when_none():
    assert TrainConfig(learning_rate=3e-4, d_learning_rate=None).discriminator_learning_rate == 3e-4
    assert TrainConfig(learning_rate=3e-4, d_learning_rate=1e-3).discriminator_learning_rate == 1e-3


def test_precision_computes_in_what_it_resolved_to_and_auto_unresolved_in_float32():
    assert TrainConfig().precision == "auto"
    assert TrainConfig().compute_precision == "float32"
    assert TrainConfig(resolved_precision="bfloat16").compute_precision == "bfloat16"
    assert TrainConfig(precision="bfloat16").compute_precision == "bfloat16"


def test_conditional_needs_the_convolutional_networks_and_is_locked_on_resume():
    with pytest.raises(ValueError, match="conditional needs the dcgan networks"):
        TrainConfig(conditional=True, arch="mlp")
    assert TrainConfig(conditional=True).num_classes == 10
    assert TrainConfig().num_classes == 0
    with pytest.raises(TrainerError, match=r"conditional \(checkpoint False, flags True\)"):
        resolve_resume(TrainConfig(), {"conditional": True})


def test_a_config_written_before_conditional_runs_existed_is_unconditional():
    values = flat_config(TrainConfig())
    del values["conditional"]
    assert TrainConfig.from_json(json.dumps(values)).conditional is False


def test_a_config_written_before_the_mode_seeking_term_trains_without_it():
    values = flat_config(TrainConfig(mode_seeking=1.0))
    del values["mode_seeking"]
    assert TrainConfig.from_json(json.dumps(values)).mode_seeking == 0.0


def test_a_config_written_before_the_bound_keeps_the_mode_seeking_term_uncapped():
    written = json.loads(defaults(conditional=True).to_json())
    assert written["training"]["mode_seeking_bound"] == "real"  # what a fresh run writes
    values = flat_config(defaults(conditional=True))
    del values["mode_seeking_bound"]
    assert TrainConfig.from_json(json.dumps(values)).mode_seeking_bound == "none"


def test_the_mismatch_term_needs_a_conditional_run_and_old_configs_train_without_it():
    with pytest.raises(ValueError, match="mismatch .* needs --conditional"):
        TrainConfig(mismatch=1.0)
    assert TrainConfig(conditional=True, mismatch=1.0).mismatch == 1.0
    values = flat_config(TrainConfig(conditional=True, mismatch=1.0))
    del values["mismatch"]
    assert TrainConfig.from_json(json.dumps(values)).mismatch == 0.0


def test_the_projection_needs_a_conditional_run_is_locked_and_old_configs_lack_it():
    with pytest.raises(ValueError, match="projection .* needs --conditional"):
        TrainConfig(projection=True)
    projected = TrainConfig(conditional=True, projection=True)
    with pytest.raises(TrainerError, match=r"projection \(checkpoint True, flags False\)"):
        resolve_resume(projected, {"projection": False})
    assert json.loads(projected.to_json())["model"]["projection"] is True
    values = flat_config(projected)
    del values["projection"]
    assert TrainConfig.from_json(json.dumps(values)).projection is False


def test_image_size_and_channels_are_a_folders_and_kept_on_resume():
    with pytest.raises(ValueError, match="image_size applies to --dataset folder"):
        TrainConfig(image_size=32)
    with pytest.raises(ValueError, match="channels applies to --dataset folder"):
        TrainConfig(dataset="fashion-mnist", channels=3)
    with pytest.raises(ValueError, match="image_size must be one of 32, 64, got 48"):
        TrainConfig(dataset="folder", image_size=48)
    folder = TrainConfig(dataset="folder", image_size=32)
    with pytest.raises(TrainerError, match=r"image_size \(checkpoint 32, flags 64\)"):
        resolve_resume(folder, {"image_size": 64})
    assert resolve_resume(folder, {"mirror": True}).mirror  # a training option


def test_fashion_mnist_trains_its_own_r1_weight_unless_a_flag_or_its_checkpoint_says_otherwise():
    assert resolved().r1_gamma == 1.0
    assert resolved("--dataset", "fashion-mnist").r1_gamma == 0.1
    assert resolved("--dataset", "fashion-mnist", "--r1-gamma", "1").r1_gamma == 1.0
    assert resolved("--dataset", "folder").r1_gamma == 1.0
    assert defaults(conditional=True, dataset="fashion-mnist").r1_gamma == 0.1
    # A run saved with another weight resumes with its own.
    saved = TrainConfig(dataset="fashion-mnist", r1_gamma=1.0)
    assert resolve_resume(saved, {"continue_train": True}).r1_gamma == 1.0
    assert "with --dataset fashion-mnist, 0.1" in " ".join(
        flags.build_parser().format_help().split()
    )
