"""Animated GIFs: the training animation (progress.gif) and the GIF writer the walks share.

At each epoch end (and a mid-epoch end) the training loop saves its fixed-noise 8x8 grid,
the picture TensorBoard shows, as LOG_DIR/grids/step_00000468.png; progress.gif plays
those grids in step order. `python -m trainer.task --progress-gif` makes it for any run,
finished or interrupted. Files go through tf.io.gfile: LOG_DIR may be on gs:// or ram://.
"""

import io
import os
import re

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from trainer import images as image_utils
from trainer import paths
from trainer.errors import TrainerError

GRID_FOLDER = "grids"  # under the log folder
GIF_NAME = "progress.gif"
STEP_DIGITS = 8  # step_00000468.png: names sort like their steps up to 10^8 steps
FRAME_MS = 200  # each epoch's grid on screen; 47 epochs play in about 10 seconds
LAST_FRAME_MS = 2000  # the final grid lingers before the loop starts again
_GRID_NAME = re.compile(r"step_(\d+)\.png$")


def grid_path(log_dir: str, step: int) -> str:
    """LOG_DIR/grids/step_00000468.png for step 468."""
    return os.path.join(log_dir, GRID_FOLDER, f"step_{step:0{STEP_DIGITS}d}.png")


def save_grid(picture: np.ndarray, log_dir: str, step: int) -> str:
    """Writes one training grid, uint8 (H, W) in [0, 255], as LOG_DIR/grids/step_N.png.

    Returns:
      The PNG's path.

    Raises:
      TrainerError: the folder or file cannot be written (the path named).
    """
    path = grid_path(log_dir, step)
    fix = "free space or pass another --log-dir"
    try:
        tf.io.gfile.makedirs(os.path.dirname(path))
    except (OSError, tf.errors.OpError) as err:
        raise TrainerError(f"could not write {path} ({paths.reason(err)}); {fix}") from err
    image_utils.save_png(picture, path, fix)
    return path


def grid_paths(log_dir: str) -> list:
    """The step_N.png grids in LOG_DIR/grids, in step order (by number, not by name)."""
    found = []
    for path in paths.matching(os.path.join(log_dir, GRID_FOLDER), "step_*.png"):
        match = _GRID_NAME.search(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def write_progress_gif(log_dir: str) -> str:
    """Assembles LOG_DIR/progress.gif from every grid in LOG_DIR/grids, in step order.

    One frame per grid (FRAME_MS each, the last LAST_FRAME_MS), looping forever.

    Returns:
      The GIF's path.

    Raises:
      TrainerError: no grids there (the folder named, with the fix), a grid that does
        not read or differs in size from the first, or a failed write.
    """
    paths = grid_paths(log_dir)
    folder = os.path.join(log_dir, GRID_FOLDER)
    if not paths:
        raise TrainerError(
            f"no training grids (step_*.png) in {folder!r} to animate; pass --log-dir with "
            "the TensorBoard folder of a run, which saves a grid there at each epoch end "
            "(train or resume one if it has none yet)"
        )
    frames = [_read_grid(path) for path in paths]
    for path, frame in zip(paths, frames):
        if frame.shape != frames[0].shape:
            raise TrainerError(
                f"{path} is {frame.shape[1]}x{frame.shape[0]} but {paths[0]} is "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}; the folder mixes runs: "
                f"remove the odd grids or pass the --log-dir of one run"
            )
    path = os.path.join(log_dir, GIF_NAME)
    write_gif(
        frames,
        path,
        [FRAME_MS] * (len(frames) - 1) + [LAST_FRAME_MS],
        fix=f"free space, then run `python -m trainer.task --progress-gif --log-dir {log_dir}`",
    )
    return path


def write_gif(frames, path: str, durations, fix: str) -> None:
    """Writes uint8 (H, W) grey or (H, W, 3) colour frames as a GIF that loops forever.

    Written under a temporary name and renamed, so a failed write leaves any previous
    GIF at `path` whole. Pillow merges a frame identical to the one before it into that
    one (adding its duration), so a GIF of repeated frames holds fewer.

    Args:
      frames: a sequence of uint8 (H, W) or (H, W, 3) arrays in [0, 255], all the same
        shape.
      path: the .gif to write.
      durations: milliseconds on screen, one int for every frame or one per frame.
      fix: what the user should do if the write fails, for the error message.

    Raises:
      TrainerError: the file cannot be written (the path, the reason and `fix` named).
    """
    pictures = [Image.fromarray(np.asarray(frame, dtype=np.uint8)) for frame in frames]
    encoded = io.BytesIO()
    try:
        pictures[0].save(
            encoded,
            format="GIF",
            save_all=True,
            append_images=pictures[1:],
            duration=durations,
            loop=0,
        )
        paths.write_atomically(path, encoded.getvalue())
    except (OSError, tf.errors.OpError) as err:
        raise TrainerError(f"could not write {path} ({paths.reason(err)}); {fix}") from err


def _read_grid(path: str) -> np.ndarray:
    try:
        with image_utils.open_image(path) as image:
            # Grey grids stay grey; colour ones keep their colour.
            return np.asarray(image.convert("L" if image.mode in ("L", "LA", "1") else "RGB"))
    except (OSError, UnidentifiedImageError, tf.errors.OpError) as err:
        raise TrainerError(
            f"{path}: not a readable PNG ({paths.reason(err)}); delete it "
            "and run --progress-gif again"
        ) from err
