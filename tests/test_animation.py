import errno
import os
import signal

import numpy as np
import pytest
from helpers import replace, slow
from PIL import Image, ImageSequence

from trainer import animation, task, train
from trainer.errors import TrainerError

GRID_PIXELS = 8 * 30 + 2  # 8x8 digits of 28 pixels with images.grid's 2-pixel gaps


def gif_frames(path):
    with Image.open(path) as image:
        return [np.asarray(frame.convert("L")) for frame in ImageSequence.Iterator(image)]


def grid_steps(log_dir):
    return [int(os.path.basename(p)[5:-4]) for p in animation.grid_paths(log_dir)]


def flat_grids(log_dir, values_by_step):
    """Writes a uniform 10x12 grid of value v for each step -> v."""
    for step, value in values_by_step.items():
        animation.save_grid(np.full((10, 12), value, np.uint8), str(log_dir), step)


def test_grid_names_are_zero_padded_so_they_sort_by_step(tmp_path):
    assert animation.grid_path("logs", 468) == os.path.join("logs", "grids", "step_00000468.png")
    flat_grids(tmp_path, {4680: 30, 468: 10, 936: 20, 123456789: 40})
    # Unpadded, "step_99" sorts after "step_00000468" by name: the order is by number.
    Image.new("L", (12, 10)).save(tmp_path / "grids" / "step_99.png")
    (tmp_path / "grids" / "notes.png").write_bytes(b"")  # not a step_N.png: ignored
    assert grid_steps(str(tmp_path)) == [99, 468, 936, 4680, 123456789]


def test_progress_gif_has_one_frame_per_grid_in_step_order(tmp_path):
    flat_grids(tmp_path, {936: 20, 468: 10, 1404: 30})
    path = animation.write_progress_gif(str(tmp_path))
    assert path == str(tmp_path / "progress.gif")
    frames = gif_frames(path)
    assert [int(frame.mean()) for frame in frames] == [10, 20, 30]
    assert frames[0].shape == (10, 12)
    with Image.open(path) as gif:
        assert gif.info["loop"] == 0
        durations = []
        for index in range(gif.n_frames):
            gif.seek(index)
            durations.append(gif.info["duration"])
    assert durations == [animation.FRAME_MS] * 2 + [animation.LAST_FRAME_MS]
    assert not os.path.exists(path + ".partial")


def test_no_grids_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(TrainerError, match=r"no training grids .*grids'.*--log-dir"):
        animation.write_progress_gif(str(tmp_path))


def test_grids_of_another_size_are_named(tmp_path):
    flat_grids(tmp_path, {10: 1})
    animation.save_grid(np.zeros((20, 20), np.uint8), str(tmp_path), 20)
    with pytest.raises(TrainerError, match=r"step_00000020.png is 20x20 but .* is 12x10"):
        animation.write_progress_gif(str(tmp_path))


def test_a_failed_grid_write_names_the_file(tmp_path, monkeypatch):
    def full_disk(image, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(animation.image_utils.Image.Image, "save", full_disk)
    with pytest.raises(TrainerError, match=r"step_00000007.png \(No space left on device\)"):
        animation.save_grid(np.zeros((4, 4), np.uint8), str(tmp_path), 7)


def test_a_failed_gif_write_names_the_file_and_keeps_nothing_half_written(tmp_path):
    flat_grids(tmp_path, {1: 0, 2: 50})
    (tmp_path / "progress.gif").mkdir()  # a folder where the GIF should go
    with pytest.raises(TrainerError, match=r"could not write .*progress.gif .*--progress-gif"):
        animation.write_progress_gif(str(tmp_path))
    assert not os.path.exists(str(tmp_path / "progress.gif.partial"))


@slow
def test_training_saves_a_grid_each_epoch_end_and_the_progress_gif(tiny_config, blob_images):
    # 160 images / 16 = 10 steps an epoch: grids at both epoch ends and the last step.
    config = replace(tiny_config, train_steps=25, checkpoint_freq=1000)
    train.run(config, images=blob_images)
    assert grid_steps(config.log_dir) == [10, 20, 25]
    for path in animation.grid_paths(config.log_dir):
        with Image.open(path) as grid:
            assert grid.mode == "L" and grid.size == (GRID_PIXELS, GRID_PIXELS)
    with Image.open(os.path.join(config.log_dir, "progress.gif")) as gif:
        assert gif.n_frames == 3 and gif.size == (GRID_PIXELS, GRID_PIXELS)
    # The GIF's frames are the grids, in step order.
    grids = [np.asarray(Image.open(p)) for p in animation.grid_paths(config.log_dir)]
    for frame, grid in zip(gif_frames(os.path.join(config.log_dir, "progress.gif")), grids):
        np.testing.assert_array_equal(frame, grid)


def test_a_run_stopped_by_a_signal_still_leaves_the_progress_gif(
    tiny_config, blob_images, monkeypatch
):
    class SignalAtStep13(train.EpochProgress):  # Ctrl-C as the loop reports step 13
        def __init__(self, epoch, *args, **kwargs):
            super().__init__(epoch, *args, **kwargs)
            self.epoch = epoch

        def update(self, done, values, force=False):
            super().update(done, values, force)
            if self.epoch == 1 and done == 3:  # 10 steps an epoch: the second epoch's 3rd
                signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(train, "EpochProgress", SignalAtStep13)
    config = replace(tiny_config, train_steps=100, checkpoint_freq=1000)
    result = train.run(config, images=blob_images)
    assert result["interrupted"] == "SIGINT" and result["step"] == 13
    assert grid_steps(config.log_dir) == [10, 13]
    with Image.open(os.path.join(config.log_dir, "progress.gif")) as gif:
        assert gif.n_frames == 2


def test_progress_gif_command_on_a_run_folder(tmp_path, capsys):
    flat_grids(tmp_path / "logs", {468: 0, 936: 100, 1404: 200, 1872: 255})
    assert task.main(["--progress-gif", "--log-dir", str(tmp_path / "logs")]) == 0
    gif = tmp_path / "logs" / "progress.gif"
    assert capsys.readouterr().out.strip().splitlines() == [f"wrote {gif}"]
    assert [int(frame.mean()) for frame in gif_frames(gif)] == [0, 100, 200, 255]


def test_progress_gif_command_on_an_empty_folder_is_one_line_and_exit_1(tmp_path, capsys):
    assert task.main(["--progress-gif", "--log-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no training grids")
    assert str(tmp_path / "grids") in err[0] and captured.out == ""
    assert not os.path.exists(tmp_path / "progress.gif")
