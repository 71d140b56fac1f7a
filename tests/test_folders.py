"""The image-folder loader on files the tests make: formats, modes, sizes, classes, bad
files, and the cache."""

import os

import numpy as np
import pytest
from PIL import Image

from trainer import folders
from trainer.errors import TrainerError


def save(path, image, **options):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def solid(mode, size, colour):
    return Image.new(mode, size, colour)


def load(root, size=8, channels=None, cache=None):
    return folders.load(str(root), size, channels, cache_dir=str(cache or root.parent / "cache"))


def test_every_format_and_mode_decodes_to_the_training_size(tmp_path):
    root = tmp_path / "images"
    save(root / "a.png", solid("RGB", (20, 10), (255, 0, 0)))  # wide: centre-cropped
    save(root / "b.jpg", solid("RGB", (9, 30), (0, 0, 255)), quality=95)  # tall
    save(root / "c.bmp", solid("RGB", (8, 8), (0, 255, 0)))
    frames = [solid("RGB", (12, 12), (255, 255, 0)), solid("RGB", (12, 12), (0, 0, 0))]
    frames[0].save(root / "d.gif", save_all=True, append_images=frames[1:])  # 2 frames
    save(root / "e.webp", solid("RGB", (16, 16), (0, 255, 255)))
    palette = solid("RGB", (10, 10), (255, 0, 255)).convert("P")
    save(root / "nested" / "deeper" / "f.png", palette)
    got = load(root)
    assert got.images.shape == (6, 8, 8, 3) and got.images.dtype == np.uint8
    assert got.labels is None and got.spec.shape == (8, 8, 3) and got.spec.class_names == ()
    centre = [tuple(int(v) for v in image[4, 4]) for image in got.images]
    assert centre[0] == (255, 0, 0) and centre[2] == (0, 255, 0)
    assert np.abs(np.subtract(centre[1], (0, 0, 255))).max() <= 8  # JPEG is lossy
    assert centre[3] == (255, 255, 0)  # the GIF's first frame
    assert centre[5] == (255, 0, 255)


def test_transparency_becomes_the_stated_background(tmp_path):
    root = tmp_path / "images"
    clear = solid("RGBA", (8, 8), (255, 0, 0, 0))
    clear.putpixel((4, 4), (255, 0, 0, 255))
    save(root / "alpha.png", clear)
    got = load(root)
    assert tuple(got.images[0][0, 0]) == folders.BACKGROUND  # fully transparent
    assert tuple(got.images[0][4, 4]) == (255, 0, 0)  # opaque stays


def test_grey_images_stay_grey_and_channels_can_be_forced(tmp_path):
    root = tmp_path / "grey"
    save(root / "a.png", solid("L", (8, 8), 40))
    save(root / "b.png", solid("L", (16, 16), 200))
    grey = load(root)
    assert grey.images.shape == (2, 8, 8) and grey.spec.channels == 1
    colour = load(root, channels=3)
    assert colour.images.shape == (2, 8, 8, 3) and tuple(colour.images[0][0, 0]) == (40, 40, 40)
    save(root / "c.png", solid("RGB", (8, 8), (0, 0, 255)))
    mixed = load(root)
    assert mixed.spec.channels == 3  # one colour image makes the set colour
    assert load(root, channels=1).images.shape == (3, 8, 8)


def test_one_level_of_subfolders_gives_the_classes(tmp_path):
    root = tmp_path / "animals"
    for name, count in (("dogs", 2), ("cats", 3)):
        for index in range(count):
            save(root / name / "more" / f"{index}.png", solid("L", (8, 8), index))
    got = load(root)
    assert got.spec.class_names == ("cats", "dogs")
    assert sorted(got.labels.tolist()) == [0, 0, 0, 1, 1]


def test_images_beside_the_subfolders_make_an_unlabelled_set(tmp_path):
    root = tmp_path / "mixed"
    save(root / "top.png", solid("L", (8, 8), 1))
    save(root / "a" / "x.png", solid("L", (8, 8), 2))
    save(root / "b" / "y.png", solid("L", (8, 8), 3))
    assert load(root).labels is None and load(root).spec.class_names == ()


def test_bad_files_are_named_skipped_and_counted(tmp_path, caplog):
    root = tmp_path / "some-bad"
    save(root / "good.png", solid("L", (8, 8), 9))
    (root / "notes.txt").write_text("not an image")
    truncated = save(root / "cut.png", solid("RGB", (64, 64), (1, 2, 3)))
    truncated.write_bytes(truncated.read_bytes()[:60])
    with caplog.at_level("WARNING"):
        got = load(root)
    assert len(got.images) == 1
    skipped = dict(got.skipped)
    assert set(skipped) == {"notes.txt", "cut.png"}
    assert skipped["notes.txt"] == "not an image Pillow reads"
    assert "skipped 2 of 3 files: " in caplog.text
    assert "cut.png (image file is truncated)" in caplog.text and "notes.txt (" in caplog.text


def test_a_folder_without_images_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainerError, match=r"no readable image in .* \(0 files looked at\)"):
        load(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    with pytest.raises(TrainerError, match=r"no readable image .* \(1 files looked at\)"):
        load(tmp_path / "text")
    with pytest.raises(TrainerError, match="is not a folder"):
        load(tmp_path / "missing")


def test_a_second_load_reads_the_cache_and_a_changed_file_rebuilds_it(tmp_path, monkeypatch):
    root = tmp_path / "images"
    save(root / "a.png", solid("L", (8, 8), 10))
    save(root / "b.png", solid("L", (8, 8), 20))
    first = load(root)
    cached = list((tmp_path / "cache").glob("*.npy"))
    assert len(cached) == 1
    decoded = []
    real_read = folders._read
    monkeypatch.setattr(folders, "_read", lambda *args: decoded.append(args) or real_read(*args))
    again = load(root)
    assert decoded == [] and isinstance(again.images, np.memmap)  # from the cache
    np.testing.assert_array_equal(again.images, first.images)
    save(root / "b.png", solid("L", (8, 8), 99))  # changed
    os.utime(root / "b.png", ns=(1, 1))
    rebuilt = load(root)
    assert len(decoded) == 2 and int(rebuilt.images[1][0, 0]) == 99
    assert load(root, size=4).images.shape == (2, 4, 4)  # another size, another cache


def test_a_cache_that_cannot_be_written_decodes_into_memory(tmp_path, caplog):
    root = tmp_path / "images"
    save(root / "a.png", solid("L", (8, 8), 10))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level("WARNING"):
        got = folders.load(str(root), 8, cache_dir=str(blocker / "cache"))
    assert got.images.shape == (1, 8, 8) and "decoding into memory" in caplog.text
