"""The image spec: what a data set's images are, read by everything downstream."""

import dataclasses
import json

import numpy as np
import pytest
from helpers import flat_config, tiny_config

from trainer import images as image_utils
from trainer import model
from trainer.errors import TrainerError
from trainer.image_spec import MNIST, ImageSpec
from trainer.train_config import TrainConfig, check_resumable


def test_mnist_spec_is_28_by_28_grey_digits():
    assert MNIST.shape == (28, 28, 1)
    assert MNIST.class_names == tuple("0123456789") and MNIST.num_classes == 10
    assert MNIST.pixel_range == (0, 255)


def test_spec_round_trips_through_json():
    spec = ImageSpec(64, 64, 3, ("cats", "dogs"))
    assert ImageSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    "values, message",
    [
        (dict(height=2, width=28, channels=1), "height must be an integer of at least 4, got 2"),
        (dict(height=28, width=28, channels=2), "channels must be 1 (grey) or 3 (colour), got 2"),
        (dict(height=28, width=28, channels=1, class_names=["a", "a"]), "must differ"),
        (dict(height=28, width=28, channels=1, depth=3), "unknown image spec fields ['depth']"),
    ],
)
def test_bad_specs_name_the_value(values, message):
    with pytest.raises(ValueError) as error:
        ImageSpec.from_dict(values)
    assert message in str(error.value)


def test_config_json_records_the_spec_and_old_files_read_as_mnist(tmp_path):
    config = dataclasses.replace(tiny_config(tmp_path), image=ImageSpec(32, 32, 3, ("a", "b")))
    saved = json.loads(config.to_json())["model"]["image"]
    assert saved["height"] == 32 and saved["class_names"] == ["a", "b"]
    assert TrainConfig.from_json(config.to_json()).image == config.image
    old = flat_config(config)  # a config.json written before the spec existed
    assert TrainConfig.from_json(json.dumps(old)).image == MNIST


def test_resume_on_other_images_is_refused(tmp_path):
    config = tiny_config(tmp_path)
    with pytest.raises(TrainerError, match=r"cannot resume: .* image \(checkpoint"):
        check_resumable(config, dataclasses.replace(config, image=ImageSpec(32, 32, 3)))
    check_resumable(config, dataclasses.replace(config, learning_rate=0.5))  # not locked


def test_a_conditional_run_needs_classes(tmp_path):
    with pytest.raises(ValueError, match="two classes or more, got 0"):
        dataclasses.replace(tiny_config(tmp_path), conditional=True, image=ImageSpec(32, 32, 3))


def test_colour_pixels_round_trip_and_tile():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    scaled = image_utils.to_model_range(pixels)
    assert scaled.shape == (5, 8, 8, 3) and scaled.min() >= -1 and scaled.max() <= 1
    np.testing.assert_array_equal(image_utils.to_uint8(scaled), pixels)
    picture = image_utils.grid(pixels, columns=2)
    assert picture.shape == (3 * 10 + 2, 2 * 10 + 2, 3)
    np.testing.assert_array_equal(picture[2:10, 12:20], pixels[1])  # row 0, column 1
    assert (picture[0] == 255).all()  # the white border


def test_grey_pixels_keep_their_shape():
    pixels = np.arange(2 * 6 * 6, dtype=np.uint8).reshape(2, 6, 6)
    assert image_utils.to_model_range(pixels).shape == (2, 6, 6, 1)
    np.testing.assert_array_equal(image_utils.to_uint8(image_utils.to_model_range(pixels)), pixels)


def test_colour_png_is_written_in_colour(tmp_path):
    from PIL import Image

    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[..., 0] = 200  # red
    image_utils.save_png(pixels, str(tmp_path / "red.png"))
    with Image.open(tmp_path / "red.png") as image:
        assert image.mode == "RGB" and image.getpixel((1, 1)) == (200, 0, 0)


@pytest.mark.parametrize(
    "size, hidden", [(28, [7, 14]), (32, [4, 8, 16]), (64, [4, 8, 16, 32]), (12, [6])]
)
def test_the_dcgan_nets_halve_the_size_down_to_a_small_base(size, hidden):
    assert model.hidden_sizes(ImageSpec(size, size, 1)) == hidden


def test_sizes_no_stride_two_layer_fits_are_refused():
    with pytest.raises(ValueError, match="square"):
        model.hidden_sizes(ImageSpec(28, 32, 1))
    with pytest.raises(ValueError, match="cannot be halved"):
        model.hidden_sizes(ImageSpec(7, 7, 1))


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_networks_follow_a_colour_spec(arch, tmp_path):
    spec = ImageSpec(64, 64, 3, ("a", "b", "c"))
    config = dataclasses.replace(
        tiny_config(tmp_path), image=spec, arch=arch, conditional=arch == "dcgan"
    )
    generator = model.build(config, "generator")
    discriminator = model.build(config, "discriminator")
    z = np.zeros((2, config.latent_dim), np.float32)
    labels = np.array([0, 2]) if config.conditional else None
    images = generator(model.inputs(z, labels, config.num_classes), training=False)
    assert images.shape == (2, 64, 64, 3)
    logits = discriminator(model.inputs(images, labels, config.num_classes), training=False)
    assert logits.shape == (2, 1)
    if arch == "dcgan":  # channels double as the size halves: 32 (w), 16 (2w), 8, 4 (8w)
        convs = [layer for layer in discriminator.layers if type(layer).__name__ == "Conv2D"]
        assert [layer.filters for layer in convs] == [4, 8, 16, 32, 1]
        assert convs[-1].kernel_size == (4, 4)  # the base
