"""trainer.tools.flops: the networks' FLOPs from their layer shapes."""

import dataclasses

import pytest
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from trainer import model
from trainer.tools import flops
from trainer.train_config import TrainConfig


def profiler_flops(net, input_shape) -> int:
    """TensorFlow's own count of a forward pass's floating-point operations."""
    forward = tf.function(lambda x: net(x, training=False)).get_concrete_function(
        tf.TensorSpec(input_shape)
    )
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(
        graph=convert_variables_to_constants_v2(forward).graph, options=options
    ).total_float_ops


def test_conv_flops_agree_with_tensorflows_profiler():
    # The profiler also counts bias adds, batch norm and activations, which layer_flops
    # leaves out: a fraction of a percent here.
    net = model.build_discriminator(64)
    assert flops.layer_flops(net) == pytest.approx(profiler_flops(net, [1, 28, 28, 1]), rel=0.01)


def test_transposed_conv_flops_count_each_input_pixels_patch():
    # 2 x (1*1*100 * 7*7*128  +  7*7*128 * 4*4*64  +  14*14*64 * 4*4*1): the adjoint
    # convolutions' counts (the profiler counts zeros of the dilated input instead).
    assert flops.layer_flops(model.build_generator(100, 64)) == 2 * (
        100 * 49 * 128 + 49 * 128 * 16 * 64 + 196 * 64 * 16
    )


def one_layer(layer, input_shape):
    """`layer` called on a Keras input of `input_shape` (no batch), so its shapes are set."""
    layer(tf.keras.Input(shape=input_shape))
    return layer


def test_a_strided_conv_counts_each_output_values_window():
    # Stride 2, no padding: 7x7 -> 3x3, each of 3*3*3 outputs a 3x3x2 window = 486 MACs.
    # A count over input positions (7*7) instead of output positions would be 5x off.
    conv = one_layer(tf.keras.layers.Conv2D(3, 3, strides=2), (7, 7, 2))
    assert flops.one_layer_flops(conv) == 2 * (3 * 3 * 3) * (3 * 3 * 2)
    # A 1x3 kernel: 4x5 -> 4x3, each of 4*3*3 outputs a 1x3x2 window = 216 MACs.
    wide = one_layer(tf.keras.layers.Conv2D(3, (1, 3)), (4, 5, 2))
    assert flops.one_layer_flops(wide) == 2 * (4 * 3 * 3) * (1 * 3 * 2)


def test_a_tiling_transposed_conv_counts_each_input_values_patch():
    # Kernel 2, stride 2: the patches tile the 6x6 output without overlap, so every one
    # of its 6*6*3 values is one tap of each of the 2 input channels = 216 MACs.
    up = one_layer(tf.keras.layers.Conv2DTranspose(3, 2, strides=2), (3, 3, 2))
    assert flops.one_layer_flops(up) == 2 * (6 * 6 * 3) * 2


def test_a_dense_layer_counts_one_multiply_add_per_weight():
    dense = one_layer(tf.keras.layers.Dense(3), (5,))
    assert flops.one_layer_flops(dense) == 2 * 5 * 3
    assert flops.one_layer_flops(one_layer(tf.keras.layers.ReLU(), (5,))) is None


def test_training_flops_are_three_forward_passes_plus_the_extra_d_passes():
    # Width 8, latent 100, depth 0: the layers' multiply-adds per image, by hand.
    g = 2 * (100 * 7 * 7 * 16 + 7 * 7 * 16 * 4 * 4 * 8 + 14 * 14 * 8 * 4 * 4 * 1)
    d = 2 * (14 * 14 * 8 * 4 * 4 * 1 + 7 * 7 * 16 * 4 * 4 * 8 + 1 * 7 * 7 * 16)
    config = TrainConfig(
        generator_width=8,
        discriminator_width=8,
        generator_depth=0,
        discriminator_depth=0,
        r1_interval=4,
    )
    counts = flops.train_flops_per_image(config)
    assert (counts["generator_forward"], counts["discriminator_forward"]) == (g, d)
    # G forward and backward (3g); D forward and backward on the real and on the
    # generated image (6d); D backward into G (d); R1's 4d every 4 steps (d).
    assert counts["train"] == 3 * g + 6 * d + d + d
    no_r1 = flops.train_flops_per_image(dataclasses.replace(config, r1_gamma=0.0))
    assert no_r1["train"] == 3 * g + 6 * d + d
