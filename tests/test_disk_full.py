"""A real full disk: a small tmpfs holds the checkpoints and samples. Skipped where this
process may not mount one (it needs root); test_reliability injects ENOSPC instead."""

import os
import subprocess

import pytest
from helpers import replace

from trainer import checkpoints, loaders, sample, train
from trainer.errors import TrainerError

pytestmark = pytest.mark.slow  # real full disks

DISK_BYTES = 2 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs mounted at tmp_path/disk, unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
        )
        if os.geteuid() == 0
        else None
    )
    if mounted is None or mounted.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs here (needs root and mount rights): "
            + (mounted.stderr.strip() if mounted else "not root")
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def fill(folder, leave_bytes):
    """Writes a filler file so that about `leave_bytes` stay free on folder's disk."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with open(os.path.join(folder, "filler"), "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))


def test_full_disk_stops_training_with_the_reason_and_keeps_the_last_checkpoint(
    small_disk, tiny_config, blob_images
):
    config = replace(tiny_config, checkpoint_dir=str(small_disk / "ckpt"), train_steps=4)
    train.run(config, images=blob_images)
    fill(str(small_disk), leave_bytes=4096)
    with pytest.raises(
        TrainerError,
        match=r"could not write the step \d+ checkpoint in "
        r".*ckpt.*No space left on device.*ckpt-4, is intact",
    ):
        train.run(replace(config, continue_train=True, train_steps=12), images=blob_images)
    assert checkpoints.checkpoint_prefixes(config.checkpoint_dir)[0].endswith("ckpt-4")
    loaders.load_sampler(config.checkpoint_dir)  # still loads
    os.remove(small_disk / "filler")  # space again: the run resumes from step 4
    result = train.run(replace(config, continue_train=True, train_steps=12), images=blob_images)
    assert result["step"] == 12


def test_more_samples_than_the_disk_holds_fail_naming_the_file(
    small_disk, tiny_config, blob_images, tmp_path
):
    train.run(tiny_config, images=blob_images)  # checkpoints on the ordinary disk
    fill(str(small_disk), leave_bytes=64 * 1024)
    with pytest.raises(
        TrainerError,
        match=r"could not write .*sample_\d+\.png \(No space "
        r"left on device\).*--sample-dir",
    ):
        sample.write_samples(
            tiny_config.checkpoint_dir, str(small_disk / "samples"), 100_000, seed=0
        )
