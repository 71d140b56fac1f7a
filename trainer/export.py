"""--export DIR: the generator as a SavedModel (and a TFLite file) that runs without this
project, in TensorFlow Serving's layout of numbered versions:

    DIR/<step>/saved_model.pb, variables/  the weight-average generator of the checkpoint
                                            of that step, with its standing batch-norm
                                            statistics, as --sample draws from it
    DIR/<step>/model.json                   what it is: latent size and distribution,
                                            image range, step, training hyperparameters
    DIR/<step>/generator.tflite             with --tflite: serving_default for LiteRT

Signatures (both give float32 images of the run's image spec, H x W x C, in [0, 1]; for
MNIST 0 is background and 1 ink):
  serving_default  z: float32 (batch, latent_dim) -> images: (batch, H, W, C) in [0, 1]
  generate         count: int32 scalar, seed: int64 scalar -> images: (count, H, W, C),
                   the noise drawn inside from (count, seed), so a client needs none.
A conditional model's signatures also take the classes: serving_default `digits` int32
(batch,) beside z, generate `digit` int32 scalar (count images of that class).

The version is written into a temporary sibling folder and renamed into place, so a
failed export leaves nothing half-written where TF Serving looks.
"""

import contextlib
import json
import logging
import os
import uuid

import tensorflow as tf

from trainer import latent, loaders, model, paths
from trainer.errors import TrainerError

CARD_FILENAME = "model.json"
TFLITE_FILENAME = "generator.tflite"
IMAGE_RANGE = (0.0, 1.0)  # (tanh + 1) / 2: 0 background, 1 ink
# Stateless noise of a fixed algorithm: the same (count, seed) gives the same digits on
# any CPU or GPU server ("auto_select" would let the device choose).
NOISE_ALGORITHM = "philox"


class ServingGenerator(tf.Module):
    """The generator's weights and the export's two signatures, as tf.functions."""

    def __init__(self, generator: tf.keras.Model, latent_dim: int, distribution: str):
        """Args:
        generator: maps float32 (batch, latent_dim) z (and for a conditional one the
          digits) to float32 (batch, H, W, C) images in [-1, 1], batch norm in
          inference mode.
        latent_dim: length of z.
        distribution: "normal" N(0, 1) or "uniform" U(-1, 1) (trainer.latent), what
          `generate` draws z from.
        """
        super().__init__(name="dcgan_generator")
        # The module keeps the generator's tf.Variables, not the Keras model: tracking
        # both saves every weight twice (Keras 3 saves its keras.Variable wrappers apart),
        # and the TFLite converter freezes only tf.Variables it finds in the object graph
        # (through the wrappers the .tflite file computes NaN). Keras's own ExportArchive
        # does the same.
        self.generator_variables = [variable.value for variable in generator.variables]
        classes = model.num_classes(generator)

        def serve(z, digits=None):
            images = generator(
                model.inputs(z, digits, classes or None), training=False
            )  # (B, H, W, C) in [-1, 1]
            return {"images": (images + 1.0) / 2.0}  # (B, H, W, C) in [0, 1]

        def generate(count, seed, digit=None):
            seeds = tf.stack([seed, tf.constant(0, tf.int64)])  # stateless ops take 2 ints
            z = latent.draw_stateless(
                tf.stack([count, latent_dim]), seeds, distribution, NOISE_ALGORITHM
            )
            return serve(z, None if digit is None else tf.fill([count], digit))

        digit_specs = [tf.TensorSpec((None,), tf.int32, name="digits")] if classes else []
        self.serve = tf.function(
            serve,
            input_signature=[tf.TensorSpec((None, latent_dim), tf.float32, name="z")] + digit_specs,
        )
        self.generate = tf.function(
            generate,
            input_signature=[
                tf.TensorSpec((), tf.int32, name="count"),
                tf.TensorSpec((), tf.int64, name="seed"),
            ]
            + ([tf.TensorSpec((), tf.int32, name="digit")] if classes else []),
        )


def export(
    checkpoint_dir: str, export_dir: str, tflite: bool = False, overwrite: bool = False
) -> str:
    """Writes the newest readable checkpoint's sampler as EXPORT_DIR/<step>/.

    Args:
      checkpoint_dir: the trained run's checkpoint folder.
      export_dir: the model folder (local, gs:// or ram://); created if missing.
      tflite: also write generator.tflite.
      overwrite: replace an export of the same step already there.

    Returns:
      The version folder written, export_dir/<step>.

    Raises:
      TrainerError: no checkpoint; export_dir not writable; the version already there
        without `overwrite`; or a write failed (nothing of this export left behind).
    """
    generator, config, step = loaders.load_sampler_with_step(checkpoint_dir)
    paths.ensure_writable_dir(export_dir, "--export")
    version = os.path.join(export_dir, str(step))
    if _occupied(version) and not overwrite:
        raise TrainerError(
            f"--export: {version!r} already holds an export of step {step}; "
            "pass --overwrite to replace it, or another --export folder"
        )
    # A dot name: TF Serving watches DIR for numbered folders and ignores it.
    partial = os.path.join(export_dir, f".{step}.partial-{uuid.uuid4().hex}")
    try:
        write_version(
            ServingGenerator(generator, config.latent_dim, config.latent_distribution),
            partial,
            _card(config, step, tflite),
            tflite,
        )
        _put_in_place(partial, version)
    except (OSError, tf.errors.OpError) as err:
        raise TrainerError(
            f"could not write the export {version!r} ({paths.reason(err)}); "
            "nothing of it was left there: free space or pass another "
            "--export folder"
        ) from err
    finally:
        _remove(partial)
    logging.info("exported step %d of %s to %s", step, checkpoint_dir, version)
    return version


def write_version(module: ServingGenerator, folder: str, card: dict, tflite: bool = False) -> None:
    """The SavedModel of `module` in `folder`, `card` as model.json beside it, and, with
    `tflite`, generator.tflite converted from that SavedModel's serving_default.

    Raises:
      OSError or tf.errors.OpError: a write failed.
    """
    tf.saved_model.save(
        module,
        folder,
        signatures={"serving_default": module.serve, "generate": module.generate},
    )
    if tflite:
        converter = tf.lite.TFLiteConverter.from_saved_model(
            folder, signature_keys=["serving_default"]
        )
        with tf.io.gfile.GFile(os.path.join(folder, TFLITE_FILENAME), "wb") as f:
            f.write(converter.convert())
    with tf.io.gfile.GFile(os.path.join(folder, CARD_FILENAME), "w") as f:
        f.write(json.dumps(card, indent=2) + "\n")


def _card(config, step: int, tflite: bool) -> dict:
    """model.json: what a client needs to call the export without this project."""
    spec = config.image
    shape = ", ".join(str(size) for size in spec.shape)
    images = f"float32 (batch, {shape}) in [{IMAGE_RANGE[0]:g}, {IMAGE_RANGE[1]:g}]"
    if spec.channels == 1:
        images += ", 0 background, 1 ink"
    serve_inputs = {"z": f"float32 (batch, {config.latent_dim})"}
    generate_inputs = {"count": "int32 scalar", "seed": "int64 scalar"}
    if config.conditional:
        last = spec.num_classes - 1
        serve_inputs["digits"] = f"int32 (batch,), the class 0-{last} each image draws"
        generate_inputs["digit"] = f"int32 scalar, the class 0-{last} every image draws"
    return {
        "model": f"DCGAN generator of {spec.height}x{spec.width} images "
        "(python -m trainer.task --export)",
        "step": step,
        "latent_dim": config.latent_dim,
        "latent_distribution": config.latent_distribution,
        "latent_distribution_meaning": {
            "normal": "N(0, 1) per coordinate",
            "uniform": "U(-1, 1) per coordinate",
        }[config.latent_distribution],
        "image_shape": list(spec.shape),
        "image_spec": spec.to_dict(),
        "image_dtype": "float32",
        "image_range": list(IMAGE_RANGE),
        "conditional": config.conditional,
        "signatures": {
            "serving_default": {"inputs": serve_inputs, "outputs": {"images": images}},
            "generate": {
                "inputs": generate_inputs,
                "outputs": {"images": images.replace("batch", "count")},
                "noise": f"tf.random.stateless_{config.latent_distribution}, "
                f"alg {NOISE_ALGORITHM}, seed [seed, 0]",
            },
        },
        "tflite": TFLITE_FILENAME if tflite else None,
        "training_config": json.loads(config.to_json()),
    }


def _put_in_place(partial: str, version: str) -> None:
    """Moves the finished `partial` folder to `version`; an old `version` (empty, or
    replaced with --overwrite) is moved aside first and deleted once the new one is in
    place, or moved back if that fails."""
    if not tf.io.gfile.exists(version):
        paths.move_folder(partial, version)
        return
    old = f"{partial}.replaced"
    paths.move_folder(version, old)
    try:
        paths.move_folder(partial, version)
    except (OSError, tf.errors.OpError):
        paths.move_folder(old, version)
        raise
    _remove(old)


def _occupied(path: str) -> bool:
    """Whether `path` is a file or a folder with something in it."""
    return tf.io.gfile.exists(path) and not (
        tf.io.gfile.isdir(path) and not tf.io.gfile.listdir(path)
    )


def _remove(folder: str) -> None:
    with contextlib.suppress(OSError, tf.errors.OpError):  # keep the first error
        if tf.io.gfile.exists(folder):
            tf.io.gfile.rmtree(folder)
