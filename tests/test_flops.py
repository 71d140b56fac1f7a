"""trainer.tools.flops: the networks' FLOPs from their layer shapes."""

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


def test_training_flops_are_three_forward_passes_plus_the_extra_d_passes():
    config = TrainConfig(generator_width=8, discriminator_width=8, r1_interval=4)
    counts = flops.train_flops_per_image(config)
    g, d = counts["generator_forward"], counts["discriminator_forward"]
    assert counts["train"] == int(3 * g + 7 * d + d)  # R1: 4 F_D every 4 steps
    no_r1 = flops.train_flops_per_image(
        TrainConfig(generator_width=8, discriminator_width=8, r1_gamma=0.0)
    )
    assert no_r1["train"] == 3 * g + 7 * d
