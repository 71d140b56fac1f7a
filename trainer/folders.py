"""A folder of images -> uint8 arrays at the training size, cached for the next run.

Every file Pillow can read, searched recursively (PNG, JPEG, BMP, GIF's first frame,
WebP, TIFF...). When every image sits in a subfolder of the folder, those first-level
subfolders are the classes (their names, sorted, in the image spec); otherwise the
images are unlabelled. Each image is composited onto BACKGROUND where it is
transparent, centre-cropped to a square and resized with RESAMPLE to the asked size,
then held as uint8: grey (1 channel) or RGB (3).

Decoding is the slow part, so the result is cached as one .npy array that later runs
read memory-mapped (a set larger than memory still trains, at the disk's pace): the
cache's name is a hash of every file's path, size and modification time and of the
decoding settings, so a changed, added or removed file rebuilds it.
"""

import dataclasses
import hashlib
import json
import logging
import os
import time

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from trainer.errors import TrainerError
from trainer.image_spec import ImageSpec

BACKGROUND = (255, 255, 255)  # what a transparent pixel becomes: white
RESAMPLE = Image.Resampling.LANCZOS  # the resize filter (Pillow's Lanczos, antialiased)
CACHE_DIR = os.path.join("~", ".cache", "dcgan-trainer")
CACHE_VERSION = 1  # bump when decoding changes, so old caches are not read as new
_PROGRESS_EVERY = 5.0  # seconds between progress lines while decoding


@dataclasses.dataclass(frozen=True)
class Folder:
    """A decoded folder: uint8 images (N, S, S) grey or (N, S, S, 3) colour, possibly a
    read-only memory map; int labels (N,) or None; its image spec; and the files that
    could not be read, with why."""

    images: np.ndarray
    labels: np.ndarray
    spec: ImageSpec
    skipped: tuple


def load(root: str, size: int, channels: int = None, cache_dir: str = CACHE_DIR) -> Folder:
    """Decodes (or reads from the cache) every image below `root`.

    Args:
      root: the folder.
      size: the side of the square training images, in pixels.
      channels: 1 (grey) or 3 (colour); None takes 1 if every image is grey, else 3.
      cache_dir: where decoded folders are cached.

    Raises:
      TrainerError: `root` is not a folder, or holds no readable image.
    """
    if not os.path.isdir(root):
        raise TrainerError(f"--data-dir {root!r} is not a folder; point it at your images")
    files = _image_candidates(root)
    key = _cache_key(root, files, size, channels)
    cache_dir = os.path.expanduser(cache_dir)
    cached = _read_cache(cache_dir, key)
    if cached is not None:
        logging.info("read %d decoded images of %s from the cache", len(cached.images), root)
        return cached
    readable, skipped, grey = _survey(root, files)
    if not readable:
        _log_skipped(skipped, len(files))
        raise TrainerError(
            f"no readable image in {root!r} ({len(files)} files looked at); put PNG, JPEG, "
            "BMP or GIF files there, or in one subfolder per class"
        )
    channels = channels or (1 if grey else 3)
    folder = _decode(root, readable, skipped, size, channels, cache_dir, key)
    _log_skipped(folder.skipped, len(files))
    return folder


def _image_candidates(root: str) -> list:
    """Every file below root, relative paths sorted; hidden files and folders left out."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found += [
            os.path.relpath(os.path.join(folder, name), root)
            for name in names
            if not name.startswith(".")
        ]
    return sorted(found)


def _classes(files: list) -> tuple:
    """The class names: the first-level subfolders when every file is in one (at least
    two of them), else none."""
    tops = {path.split(os.sep)[0] for path in files if os.sep in path}
    if len(tops) < 2 or any(os.sep not in path for path in files):
        return ()
    return tuple(sorted(tops))


def _survey(root: str, files: list):
    """Opens each file's header (no pixels decoded): (the readable files, the skipped
    (path, why) pairs, whether every readable image is grey)."""
    readable, skipped, grey = [], [], True
    for path in files:
        try:
            with Image.open(os.path.join(root, path)) as image:
                grey = grey and _is_grey(image)
            readable.append(path)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            skipped.append((path, _why(err)))
    return readable, skipped, grey


def _decode(root, files, skipped, size, channels, cache_dir, key) -> Folder:
    """Decodes `files` row by row into the cache's array file (a memory map, so the set
    need not fit in memory), or into memory where the cache cannot be written; the
    labels are the first-level subfolders' indices when those are the classes."""
    classes = _classes(files)
    shape = (len(files), size, size) + ((3,) if channels == 3 else ())
    images, temporary = _open_output(cache_dir, key, shape)
    labels, kept, skipped = [], 0, list(skipped)
    started = last = time.monotonic()
    for index, path in enumerate(files):
        try:
            images[kept] = _to_channels(_read(os.path.join(root, path), size), channels)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            skipped.append((path, _why(err)))
            continue
        kept += 1
        if classes:
            labels.append(classes.index(path.split(os.sep)[0]))
        if time.monotonic() - last > _PROGRESS_EVERY:
            last = time.monotonic()
            logging.info("decoding %s: %d of %d images", root, index + 1, len(files))
    if not kept:
        raise TrainerError(f"no image in {root!r} could be decoded; see the files skipped above")
    logging.info(
        "decoded %d images of %s in %.1fs: %dx%d, %s",
        kept,
        root,
        time.monotonic() - started,
        size,
        size,
        "grey" if channels == 1 else "colour",
    )
    folder = Folder(
        images[:kept],
        np.array(labels, np.int32) if classes else None,
        ImageSpec(size, size, channels, classes),
        tuple(skipped),
    )
    if temporary:
        images.flush()
        folder = _finish_cache(cache_dir, key, temporary, folder, kept < len(files))
    return folder


def _is_grey(image) -> bool:
    """Whether an opened (not yet decoded) image holds grey values only."""
    if image.mode == "P":
        palette = np.asarray(image.getpalette() or [0, 0, 0], np.uint8).reshape(-1, 3)
        return bool((palette == palette[:, :1]).all())
    return image.mode in ("1", "L", "LA", "I", "I;16", "F")


def _read(path: str, size: int) -> np.ndarray:
    """One file as uint8 (size, size) grey or (size, size, 3) RGB, as it was stored."""
    with Image.open(path) as image:
        image.seek(0)  # a GIF's (or any animation's) first frame
        image = ImageOps.exif_transpose(image)
        grey = _is_grey(image)
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            flat = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
            image = Image.alpha_composite(flat, rgba)
        image = image.convert("L" if grey else "RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), RESAMPLE)
        return np.asarray(image, np.uint8)


def _to_channels(picture: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        if picture.ndim == 3:  # colour to grey as Pillow does it (ITU-R 601-2 luma)
            picture = np.asarray(Image.fromarray(picture, "RGB").convert("L"))
        return picture
    return picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)


def _why(err) -> str:
    if isinstance(err, UnidentifiedImageError):
        return "not an image Pillow reads"
    return str(err).split("\n")[0] or type(err).__name__


def _cache_key(root, files, size, channels) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, size, channels, BACKGROUND, RESAMPLE.name]).encode())
    for path in files:
        status = os.stat(os.path.join(root, path))
        digest.update(f"{path}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _read_cache(cache_dir: str, key: str):
    images_path = os.path.join(cache_dir, key + ".npy")
    meta_path = os.path.join(cache_dir, key + ".json")
    if not (os.path.exists(images_path) and os.path.exists(meta_path)):
        return None
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        images = np.load(images_path, mmap_mode="r")
    except (OSError, ValueError) as err:
        logging.warning("ignoring the unreadable cache %s (%s)", images_path, err)
        return None
    labels = None if meta["labels"] is None else np.array(meta["labels"], np.int32)
    skipped = tuple(tuple(pair) for pair in meta["skipped"])
    return Folder(images, labels, ImageSpec.from_dict(meta["spec"]), skipped)


def _open_output(cache_dir: str, key: str, shape: tuple):
    """(an array of `shape` to decode into, the temporary file it maps, or None when the
    cache cannot be written and the array is in memory)."""
    temporary = os.path.join(cache_dir, f".{key}.{os.getpid()}.npy")
    try:
        os.makedirs(cache_dir, exist_ok=True)
        return np.lib.format.open_memmap(temporary, "w+", np.uint8, shape), temporary
    except OSError as err:
        logging.warning("decoding into memory: cannot cache in %s (%s)", cache_dir, err)
        return np.empty(shape, np.uint8), None


def _finish_cache(cache_dir: str, key: str, temporary: str, folder: Folder, short: bool):
    """Moves the decoded array into place (trimmed to the rows decoded where some files
    failed) beside its labels and spec, the .json last, so a reader never finds half a
    cache; returns the folder with its images memory-mapped from there."""
    final = os.path.join(cache_dir, key + ".npy")
    if short:  # copy the decoded rows to a file of their own size, a block at a time
        trimmed = np.lib.format.open_memmap(final + ".part", "w+", np.uint8, folder.images.shape)
        for start in range(0, len(trimmed), 4096):
            trimmed[start : start + 4096] = folder.images[start : start + 4096]
        trimmed.flush()
        del trimmed
        os.remove(temporary)
        temporary = final + ".part"
    os.replace(temporary, final)
    meta = {
        "spec": folder.spec.to_dict(),
        "labels": None if folder.labels is None else folder.labels.tolist(),
        "skipped": [list(pair) for pair in folder.skipped],
    }
    with open(final[:-4] + ".json.part", "w", encoding="utf-8") as f:
        json.dump(meta, f)
    os.replace(final[:-4] + ".json.part", final[:-4] + ".json")
    return dataclasses.replace(folder, images=np.load(final, mmap_mode="r"))


def _log_skipped(skipped, looked_at: int) -> None:
    """One warning naming the files skipped (the first five) and how many of how many."""
    if skipped:
        shown = "; ".join(f"{path} ({why})" for path, why in skipped[:5])
        more = f"; and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        logging.warning("skipped %d of %s files: %s%s", len(skipped), f"{looked_at:,}", shown, more)
