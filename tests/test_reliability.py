"""Reliability of the checkpoint folder: one writer, damaged checkpoints, failed writes."""

import contextlib
import errno
import glob
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import REPO, replace, slow

from trainer import checkpoints, latent, loaders, lock, model, train, train_state
from trainer.errors import TrainerError
from trainer.train_config import TrainConfig, save_config

# A second process that takes the folder's lock, says so, and holds it until killed.
HOLD = (
    "import sys; from trainer import lock; lock.acquire(sys.argv[1]); "
    "print('held', flush=True); sys.stdin.read()"
)
TRY = (
    "import sys; from trainer import lock; from trainer.errors import TrainerError\n"
    "try:\n    lock.acquire(sys.argv[1])\n"
    "except TrainerError as err:\n    sys.exit(str(err))\n"
)
ENV = {**os.environ, "PYTHONPATH": REPO}


@contextlib.contextmanager
def held_by_another_process(folder):
    """Yields the pid of a live process holding `folder`; SIGKILLs it on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, folder],
        env=ENV,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline() == "held\n", proc.stderr.read()
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def another_process_can_lock(folder):
    return (
        subprocess.run(
            [sys.executable, "-c", TRY, folder], env=ENV, timeout=60, capture_output=True
        ).returncode
        == 0
    )


def trained(config, images, **changes):
    """Trains `config` with `changes` (the run lets go of its folder when it ends)."""
    return train.run(replace(config, **changes), images=images)


def ema_weights(checkpoint_prefix, config):
    """The averaged generator's weights read straight from one checkpoint, with the
    standing batch-norm statistics load_sampler gives it."""
    generator = model.build_generator(
        config.latent_dim, config.generator_width, depth=config.generator_depth
    )
    tf.train.Checkpoint(ema_generator=generator).read(checkpoint_prefix).expect_partial()
    model.set_standing_statistics(generator, latent.standing_batch(config.latent_dim))
    return generator.get_weights()


def assert_same_weights(first, second):
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


# --- one writer per folder -------------------------------------------------------------


def test_held_folder_is_refused_with_the_holders_pid_until_the_holder_dies(tiny_config):
    folder = tiny_config.checkpoint_dir
    os.makedirs(folder)
    with held_by_another_process(folder) as pid:
        message = rf"{re.escape(folder)}.* in use .*\(pid {pid}\)"
        with pytest.raises(TrainerError, match=message):
            lock.acquire(folder)
        with pytest.raises(TrainerError, match=rf"pid {pid}"):
            train_state.restore_or_initialize(train_state.build_state(tiny_config), tiny_config)
        assert os.listdir(folder) == [lock.LOCK_FILENAME]  # nothing written meanwhile
    # SIGKILLed: no chance to clean up, yet its lock is gone with it.
    lock.acquire(folder)
    lock.release(folder)


@slow
def test_overwrite_of_a_held_folder_deletes_nothing(tiny_config, blob_images):
    trained(tiny_config, blob_images)
    before = sorted(os.listdir(tiny_config.checkpoint_dir))
    with held_by_another_process(tiny_config.checkpoint_dir):
        with pytest.raises(TrainerError, match="in use by another training run"):
            train.run(replace(tiny_config, overwrite=True), images=blob_images)
        with pytest.raises(TrainerError, match="in use by another training run"):
            train.run(replace(tiny_config, continue_train=True, train_steps=8), images=blob_images)
    assert sorted(os.listdir(tiny_config.checkpoint_dir)) == before


def test_a_run_holds_its_folder_until_released(tiny_config, blob_images):
    train.run(tiny_config, images=blob_images)
    assert another_process_can_lock(tiny_config.checkpoint_dir)  # run() releases at its end
    _, manager = fresh_manager(replace(tiny_config, continue_train=True, train_steps=8))
    assert not another_process_can_lock(tiny_config.checkpoint_dir)
    train_state.release(manager)
    assert another_process_can_lock(tiny_config.checkpoint_dir)


@slow
def test_stale_lock_file_is_not_a_checkpoint_and_overwrite_keeps_it(tiny_config, blob_images):
    folder = tiny_config.checkpoint_dir
    os.makedirs(folder)
    with open(os.path.join(folder, lock.LOCK_FILENAME), "w") as f:
        f.write("999999\n")  # left by a run that died
    assert trained(tiny_config, blob_images)["step"] == 6  # not refused as "partial files"
    assert trained(tiny_config, blob_images, overwrite=True, train_steps=3)["step"] == 3
    assert os.path.exists(os.path.join(folder, lock.LOCK_FILENAME))


@slow
def test_overwrite_removes_a_temp_folder_left_by_an_interrupted_save(tiny_config, blob_images):
    trained(tiny_config, blob_images)
    os.makedirs(os.path.join(tiny_config.checkpoint_dir, "ckpt-9_temp"))
    assert trained(tiny_config, blob_images, overwrite=True)["step"] == 6
    assert not glob.glob(os.path.join(tiny_config.checkpoint_dir, "ckpt-9*"))


# --- a damaged newest checkpoint -------------------------------------------------------

DAMAGE = {
    "truncated data": lambda prefix: _truncate(prefix + ".data-00000-of-00001"),
    "missing data": lambda prefix: os.remove(prefix + ".data-00000-of-00001"),
    "truncated index": lambda prefix: _truncate(prefix + ".index"),
    "missing index": lambda prefix: os.remove(prefix + ".index"),
}
DAMAGED_FILE = {
    "truncated data": ".data-00000-of-00001",
    "missing data": ".data-00000-of-00001",
    "truncated index": ".index",
    "missing index": ".index",
}


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory, blob_images_module):
    """A deterministic 8-step run's folder, with checkpoints at steps 4 and 8."""
    folder = tmp_path_factory.mktemp("two")
    config = TrainConfig(
        checkpoint_dir=str(folder / "ckpt"),
        log_dir=str(folder / "logs"),
        sample_dir=str(folder / "samples"),
        batch_size=16,
        latent_dim=8,
        generator_width=4,
        discriminator_width=4,
        train_steps=8,
        log_freq=2,
        checkpoint_freq=4,
        seed=1,
        eval_samples=0,
        deterministic=True,
    )
    trained(config, blob_images_module)
    return config


@pytest.fixture(scope="module")
def blob_images_module():
    """160 uint8 28x28 images of a bright square, for the module-scoped run."""
    images = np.zeros((160, 28, 28), dtype=np.uint8)
    for i, image in enumerate(images):
        image[4 + i % 12 : 12 + i % 12, 6:14] = 255
    return images


@pytest.fixture
def damaged_copy(two_checkpoints, tmp_path):
    """A copy of the two-checkpoint run, for one test to damage."""
    folder = str(tmp_path / "copy")
    shutil.copytree(two_checkpoints.checkpoint_dir, folder)
    return replace(two_checkpoints, checkpoint_dir=folder, log_dir=str(tmp_path / "logs"))


@slow
@pytest.mark.parametrize("damage", ["truncated data", "missing index"])
def test_resume_falls_back_past_a_damaged_newest_checkpoint(
    two_checkpoints, damaged_copy, blob_images_module, damage, caplog
):
    config = damaged_copy
    newest = os.path.join(config.checkpoint_dir, "ckpt-8")
    DAMAGE[damage](newest)
    with caplog.at_level("INFO"):
        result = train.run(replace(config, continue_train=True), images=blob_images_module)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(newest + DAMAGED_FILE[damage] in w for w in warnings), warnings
    assert "resumed from step 4 (epoch 1)" in caplog.text
    assert result["step"] == 8
    # Replayed from step 4, the run rewrote exactly the checkpoint that was lost.
    original = os.path.join(two_checkpoints.checkpoint_dir, "ckpt-8")
    assert_same_weights(ema_weights(newest, config), ema_weights(original, config))


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_sampler_falls_back_past_a_damaged_newest_checkpoint(damaged_copy, damage, caplog):
    config = damaged_copy
    newest = os.path.join(config.checkpoint_dir, "ckpt-8")
    DAMAGE[damage](newest)
    with caplog.at_level("WARNING"):
        generator, _ = loaders.load_sampler(config.checkpoint_dir)
    assert newest + DAMAGED_FILE[damage] in caplog.text
    previous = os.path.join(config.checkpoint_dir, "ckpt-4")
    assert_same_weights(generator.get_weights(), ema_weights(previous, config))


def test_no_readable_checkpoint_names_the_folder(damaged_copy, blob_images_module):
    config = damaged_copy
    for step in (4, 8):
        DAMAGE["truncated data"](os.path.join(config.checkpoint_dir, f"ckpt-{step}"))
    message = rf"no checkpoint in '{re.escape(config.checkpoint_dir)}' can be restored"
    with pytest.raises(TrainerError, match=message):
        loaders.load_sampler(config.checkpoint_dir)
    with pytest.raises(TrainerError, match=message):
        train.run(replace(config, continue_train=True), images=blob_images_module)


def test_checkpoint_of_another_architecture_is_a_clear_error(damaged_copy, blob_images_module):
    config = replace(damaged_copy, generator_width=6)
    save_config(config, config.checkpoint_dir)  # config.json now disagrees with ckpt-*
    with pytest.raises(TrainerError, match=r"ckpt-8 does not fit the networks .*config"):
        loaders.load_sampler(config.checkpoint_dir)
    with pytest.raises(TrainerError, match=r"ckpt-8 does not fit the networks .*config"):
        train.run(replace(config, continue_train=True), images=blob_images_module)


# --- a failed checkpoint write ---------------------------------------------------------


def fresh_manager(config):
    state = train_state.build_state(config)
    return state, train_state.restore_or_initialize(state, config)


def failing_on_step(monkeypatch, failing_step, error):
    """Makes the manager's save at `failing_step` leave half a data file and raise."""
    real_save = tf.train.CheckpointManager.save

    def save(self, checkpoint_number=None, **kwargs):
        if checkpoint_number == failing_step:
            with open(
                os.path.join(self.directory, f"ckpt-{failing_step}.data-00000-of-00001"),
                "wb",
            ) as f:
                f.write(b"\0" * 100)  # what a full disk leaves behind
            raise error
        return real_save(self, checkpoint_number=checkpoint_number, **kwargs)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)


@pytest.mark.parametrize(
    "error, reason",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
        (
            tf.errors.ResourceExhaustedError(None, None, "disk quota exceeded"),
            "disk quota exceeded",
        ),
    ],
)
def test_failed_save_names_the_folder_and_keeps_the_previous_checkpoint(
    tiny_config, monkeypatch, error, reason
):
    state, manager = fresh_manager(tiny_config)
    state.step.assign(4)
    assert checkpoints.save(manager, 4).endswith("ckpt-4")
    failing_on_step(monkeypatch, 8, error)
    state.step.assign(8)
    folder = re.escape(tiny_config.checkpoint_dir)
    message = rf"step 8 checkpoint in '{folder}' \({reason}\).*ckpt-4, is intact"
    with pytest.raises(TrainerError, match=message):
        checkpoints.save(manager, 8)
    restored, _ = fresh_manager(replace(tiny_config, continue_train=True))
    assert int(restored.step) == 4


def test_save_blocked_inside_tensorflow_keeps_the_previous_checkpoint(tiny_config):
    state, manager = fresh_manager(tiny_config)
    state.step.assign(4)
    checkpoints.save(manager, 4)
    blocker = os.path.join(tiny_config.checkpoint_dir, "ckpt-8.index")
    os.makedirs(os.path.join(blocker, "in-the-way"))  # the final rename cannot replace it
    state.step.assign(8)
    with pytest.raises(TrainerError, match="could not write the step 8 checkpoint"):
        checkpoints.save(manager, 8)
    restored, _ = fresh_manager(replace(tiny_config, continue_train=True))
    assert int(restored.step) == 4


@slow
def test_run_stops_with_a_named_error_when_the_disk_fills(tiny_config, blob_images, monkeypatch):
    failing_on_step(monkeypatch, 8, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(TrainerError, match="No space left on device.*ckpt-4, is intact"):
        train.run(replace(tiny_config, train_steps=8), images=blob_images)
    monkeypatch.undo()
    result = train.run(replace(tiny_config, train_steps=8, continue_train=True), images=blob_images)
    assert result["step"] == 8
