import dataclasses

import helpers
import numpy as np
import pytest
import tensorflow as tf
from helpers import needs_bfloat16_kernels

from trainer import losses, model


def test_generator_maps_noise_to_28x28_images_in_tanh_range():
    generator = model.build_generator(latent_dim=100, width=64)
    images = generator(tf.random.normal([5, 100]) * 10, training=False)
    assert images.shape == (5, 28, 28, 1) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= -1.0 and float(tf.reduce_max(images)) <= 1.0


def test_discriminator_gives_one_logit_per_image():
    logits = model.build_discriminator(width=64)(tf.zeros([3, 28, 28, 1]))
    assert logits.shape == (3, 1) and logits.dtype == tf.float32


def test_pinned_parameter_counts():
    # Generator: 7x7 conv-T 100->128 (no bias), BN(128), 4x4 conv-T 128->64 (no bias),
    # BN(64), 4x4 conv-T 64->1 + bias. BN holds gamma, beta, mean, variance.
    g = model.build_generator(100, 64)
    assert (
        g.count_params()
        == 7 * 7 * 100 * 128 + 4 * 128 + 4 * 4 * 128 * 64 + 4 * 64 + 4 * 4 * 64 + 1
        == 760_065
    )
    # Discriminator: 4x4 conv 1->64 + bias, 4x4 conv 64->128 (no bias), BN(128),
    # 7x7 conv 128->1 + bias.
    d = model.build_discriminator(64)
    assert (
        d.count_params()
        == 4 * 4 * 64 + 64 + 4 * 4 * 64 * 128 + 4 * 128 + 7 * 7 * 128 + 1
        == 138_945
    )


def test_depth_adds_same_size_3x3_convolutions_with_batch_norm():
    # Each extra layer: a 3x3 conv without bias (c -> c) and BN(c), at both resolutions.
    g = model.build_generator(100, 64, depth=2)
    assert g.count_params() == 760_065 + 2 * (9 * 128 * 128 + 4 * 128) + 2 * (9 * 64 * 64 + 4 * 64)
    d = model.build_discriminator(64, depth=1)
    assert d.count_params() == 138_945 + 9 * 64 * 64 + 4 * 64 + 9 * 128 * 128 + 4 * 128
    assert g(tf.zeros([2, 100])).shape == (2, 28, 28, 1)
    assert d(tf.zeros([2, 28, 28, 1])).shape == (2, 1)
    # Still no batch norm on the generator's output nor the discriminator's input.
    assert _layer_types(g)[-2:] == ["Conv2DTranspose", "Activation"]
    assert _layer_types(d)[1:3] == ["Conv2D", "LeakyReLU"]


def _layer_types(net):
    return [type(layer).__name__ for layer in net.layers]


def test_batch_norm_placement_follows_dcgan():
    g_types = _layer_types(model.build_generator(16, 8))
    d_types = _layer_types(model.build_discriminator(8))
    assert g_types.count("BatchNormalization") == 2
    # No batch norm between the last transposed conv and tanh.
    assert g_types[-2:] == ["Conv2DTranspose", "Activation"]
    # No batch norm on the discriminator's input layer; one on the hidden layer.
    assert d_types[1:3] == ["Conv2D", "LeakyReLU"]
    assert d_types.count("BatchNormalization") == 1
    assert "Dense" not in g_types + d_types and "MaxPooling2D" not in d_types


def test_weights_are_drawn_from_n_0_002():
    kernel = model.build_generator(100, 64).layers[2].kernel.numpy()
    assert abs(kernel.mean()) < 1e-3 and abs(kernel.std() - 0.02) < 1e-3


def test_discriminator_learns_with_generator_frozen():
    tf.keras.utils.set_random_seed(0)
    generator, discriminator = model.build_generator(8, 4), model.build_discriminator(8)
    optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
    real = tf.concat([tf.ones([16, 14, 28, 1]), -tf.ones([16, 14, 28, 1])], axis=1)
    fake = generator(tf.random.normal([16, 8]), training=False)
    history = []
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                losses.discriminator_loss(
                    discriminator(real, training=True), discriminator(fake, training=True)
                )
            )
        grads = tape.gradient(loss, discriminator.trainable_variables)
        optimizer.apply_gradients(zip(grads, discriminator.trainable_variables))
        history.append(float(loss))
    assert history[-1] < 0.75 * history[0]  # 2 ln 2 at the start, falling as D learns


@needs_bfloat16_kernels
def test_bfloat16_nets_compute_in_bfloat16_with_float32_weights_and_outputs():
    generator = model.build_generator(16, 8, precision="bfloat16")
    discriminator = model.build_discriminator(8, precision="bfloat16")
    images = generator(tf.random.normal([2, 16]), training=False)
    assert images.dtype == tf.float32
    assert discriminator(images, training=False).dtype == tf.float32
    conv = next(
        layer for layer in generator.layers if isinstance(layer, tf.keras.layers.Conv2DTranspose)
    )
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"


@needs_bfloat16_kernels
def test_float32_and_bfloat16_nets_share_weights_and_agree_to_bfloat16_precision():
    tf.keras.utils.set_random_seed(3)
    exact = model.build_generator(16, 8, precision="float32")
    mixed = model.build_generator(16, 8, precision="bfloat16")
    mixed.set_weights(exact.get_weights())  # same variables, same shapes
    z = tf.random.normal([4, 16])
    difference = np.abs(exact(z, training=False) - mixed(z, training=False))
    assert 0 < difference.max() < 0.05  # bfloat16 keeps 8 bits of mantissa


def test_mlp_baseline_follows_the_tutorials_layer_sizes():
    generator, discriminator = (
        model.build_mlp_generator(100),
        model.build_mlp_discriminator(),
    )

    def dense(net):
        return [layer.units for layer in net.layers if isinstance(layer, tf.keras.layers.Dense)]

    assert dense(generator) == [256, 512, 1024, 784]
    assert dense(discriminator) == [512, 256, 1]
    images = generator(tf.random.normal([3, 100]) * 10, training=False)
    assert images.shape == (3, 28, 28, 1) and float(tf.reduce_max(tf.abs(images))) <= 1
    assert discriminator(images).shape == (3, 1)
    # Batch norm on the generator's hidden layers only; none in the discriminator.
    assert _layer_types(generator).count("BatchNormalization") == 3
    assert "BatchNormalization" not in _layer_types(discriminator)


def test_build_makes_the_configs_networks(tmp_path):
    mlp = dataclasses.replace(helpers.tiny_config(tmp_path), arch="mlp")
    assert model.build(mlp, "generator").name == "mlp_generator"
    dcgan = dataclasses.replace(mlp, arch="dcgan", conditional=True, projection=True)
    discriminator = model.build(dcgan, "discriminator")
    assert discriminator.name == "conditional_discriminator"
    assert (
        discriminator.count_params()
        == model.build_discriminator(4, num_classes=10, projection=True).count_params()
    )
    with pytest.raises(ValueError, match="network must be one of generator, discriminator"):
        model.build(dcgan, "critic")


def test_standing_statistics_are_the_batchs_own():
    generator = model.build_generator(16, 8, depth=1)
    z = tf.random.stateless_normal([256, 16], seed=[1, 2]) * 3  # far from the init stats
    norms = [
        layer for layer in generator.layers if isinstance(layer, tf.keras.layers.BatchNormalization)
    ]
    # Each layer's input under batch statistics, as the generator computes it in training.
    inputs = tf.keras.Model(generator.input, [layer.input for layer in norms])(z, training=True)
    model.set_standing_statistics(generator, z)
    for layer, x in zip(norms, inputs):
        np.testing.assert_allclose(
            layer.moving_mean.numpy(),
            tf.reduce_mean(x, axis=[0, 1, 2]),
            rtol=1e-4,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            layer.moving_variance.numpy(),
            tf.math.reduce_variance(x, axis=[0, 1, 2]),
            rtol=1e-3,
        )
        assert layer.momentum == 0.99  # put back
    # Inference on that batch now normalizes exactly as training does.
    np.testing.assert_allclose(generator(z, training=False), generator(z, training=True), atol=1e-5)


def test_conditional_networks_take_one_hot_digits_and_pin_their_extra_parameters():
    # The generator gains the (10, 5) table of the digits' embeddings, and its first
    # layer (7x7 transposed conv to 2w = 192 channels) 5 more inputs beside z's 100;
    # the discriminator's first layer (4x4 conv to w = 64 channels) 10 more inputs,
    # the digit's planes beside the image.
    g = model.build_generator(100, 96, depth=1, num_classes=10)
    d = model.build_discriminator(64, depth=2, num_classes=10)
    assert model.LABEL_EMBEDDING == 5
    assert (
        g.count_params()
        == model.build_generator(100, 96, depth=1).count_params() + 10 * 5 + 7 * 7 * 5 * 192
        == 1_701_363
    )
    assert (
        d.count_params()
        == model.build_discriminator(64, depth=2).count_params() + 4 * 4 * 10 * 64
        == 519_361
    )
    assert model.num_classes(g) == model.num_classes(d) == 10
    assert model.num_classes(model.build_generator(100, 96)) == 0
    images = g(model.inputs(tf.random.normal([4, 100]), [0, 3, 7, 9]), training=False)
    assert images.shape == (4, 28, 28, 1)
    assert d(model.inputs(images, [0, 3, 7, 9])).shape == (4, 1)


def test_inputs_one_hot_integer_digits_and_pass_label_vectors_as_they_are():
    z, labels = model.inputs(np.zeros((3, 2), np.float32), np.array([2, 0, 9]))
    np.testing.assert_array_equal(labels, np.eye(10)[[2, 0, 9]])
    mixed = np.full((1, 10), 0.1, np.float32)
    np.testing.assert_array_equal(model.inputs(z[:1], mixed)[1], mixed)
    assert model.inputs(z) is z


def _embedding_table(generator):
    """The generator's (10, LABEL_EMBEDDING) table of the digits' embeddings."""
    tables = [layer for layer in generator.layers if isinstance(layer, tf.keras.layers.Dense)]
    assert len(tables) == 1
    return tables[0]


def test_each_digit_draws_from_its_own_row_of_the_embedding_table():
    generator = model.build_generator(16, 8, num_classes=10)
    z = tf.random.stateless_normal([10, 16], seed=[3, 4])
    before = generator(model.inputs(z, range(10)), training=False).numpy()
    # The same z drawn as each digit: ten different images from the first step.
    same_z = generator(
        model.inputs(tf.repeat(z[:1], 10, axis=0), range(10)), training=False
    ).numpy()
    assert all(np.abs(same_z[i] - same_z[j]).max() > 1e-4 for i in range(10) for j in range(i))
    table = _embedding_table(generator)
    weights = table.kernel.numpy()
    assert weights.shape == (10, model.LABEL_EMBEDDING)
    weights[3] += 1.0  # digit 3's embedding
    table.kernel.assign(weights)
    after = generator(model.inputs(z, range(10)), training=False).numpy()
    changed = np.abs(after - before).max(axis=(1, 2, 3)) > 1e-4
    np.testing.assert_array_equal(changed, np.arange(10) == 3)


def test_the_first_layer_sees_z_joined_to_the_mix_of_the_digits_embeddings():
    # The walks between digits (trainer.interpolate) mix label vectors: the first layer
    # must see z unchanged, then the same mix of the two digits' embeddings.
    generator = model.build_generator(16, 8, num_classes=10)
    joined = next(
        layer for layer in generator.layers if isinstance(layer, tf.keras.layers.Concatenate)
    ).output
    first_inputs = tf.keras.Model(generator.inputs, joined)
    z = tf.random.stateless_normal([1, 16], seed=[7, 8])
    seen = first_inputs(model.inputs(z, 0.3 * np.eye(10)[[2]] + 0.7 * np.eye(10)[[7]]))
    rows = _embedding_table(generator).kernel.numpy()
    assert seen.shape == (1, 16 + model.LABEL_EMBEDDING)
    np.testing.assert_allclose(seen[0, :16], z[0], rtol=1e-6)
    np.testing.assert_allclose(seen[0, 16:], 0.3 * rows[2] + 0.7 * rows[7], rtol=1e-5, atol=1e-6)


def test_the_discriminator_sees_the_digit_as_constant_planes_beside_the_image():
    d = model.build_discriminator(8, num_classes=10)
    joined = next(
        layer for layer in d.layers if isinstance(layer, tf.keras.layers.Concatenate)
    ).output
    first_inputs = tf.keras.Model(d.inputs, joined)
    images = tf.random.stateless_uniform([2, 28, 28, 1], seed=[5, 6], minval=-1, maxval=1)
    mixed = 0.5 * (np.eye(10)[[2, 2]] + np.eye(10)[[7, 7]])
    seen = first_inputs(model.inputs(images, mixed)).numpy()
    assert seen.shape == (2, 28, 28, 11)
    np.testing.assert_allclose(seen[..., 0], images[..., 0], rtol=1e-6)
    # Every pixel carries the label vector as it is.
    np.testing.assert_allclose(
        seen[..., 1:], np.broadcast_to(mixed[:, None, None, :], (2, 28, 28, 10)), rtol=1e-6
    )
    two, seven = (d(model.inputs(images, [digit] * 2)).numpy() for digit in (2, 7))
    assert np.abs(two - seven).min() > 1e-6  # the digit changes the judgement


def test_the_projection_adds_the_digits_embedding_dotted_with_the_summed_features():
    # Miyato and Koyama 2018: logit(x, y) = psi(phi(x)) + <embedding(y), sum of phi(x)>.
    plain = model.build_discriminator(8, depth=1, num_classes=10)
    d = model.build_discriminator(8, depth=1, num_classes=10, projection=True)
    assert d.count_params() == plain.count_params() + 10 * 2 * 8  # 2w values a digit
    assert (
        model.build_discriminator(8, depth=1, num_classes=10, projection=True).count_params()
        == d.count_params()
    )
    (table,) = [
        layer
        for layer in d.layers
        if isinstance(layer, tf.keras.layers.Conv2D) and layer.kernel.shape == (1, 1, 16, 10)
    ]
    pooling = next(
        layer for layer in d.layers if isinstance(layer, tf.keras.layers.GlobalAveragePooling2D)
    )
    images = tf.random.stateless_uniform([3, 28, 28, 1], seed=[1, 2], minval=-1, maxval=1)
    features = tf.keras.Model(d.inputs, pooling.input)(model.inputs(images, [7] * 3))
    assert features.shape == (3, 7, 7, 16)
    summed = tf.reduce_sum(tf.cast(features, tf.float32), axis=[1, 2]).numpy()

    def logits():
        return {digit: d(model.inputs(images, [digit] * 3)).numpy() for digit in (2, 7)}

    kernel = np.zeros((1, 1, 16, 10), np.float32)
    table.kernel.assign(kernel)
    before = logits()
    embedding = np.linspace(-1, 1, 16).astype(np.float32)
    kernel[0, 0, :, 7] = embedding  # digit 7's row of the table only
    table.kernel.assign(kernel)
    after = logits()
    np.testing.assert_array_equal(after[2], before[2])
    np.testing.assert_allclose(
        after[7] - before[7], summed @ embedding[:, None], rtol=1e-4, atol=1e-4
    )
    assert np.abs(after[7] - before[7]).min() > 1e-3


@needs_bfloat16_kernels
def test_conditional_nets_compute_in_bfloat16_too():
    g = model.build_generator(16, 8, precision="bfloat16", num_classes=10)
    d = model.build_discriminator(8, precision="bfloat16", num_classes=10)
    images = g(model.inputs(tf.random.normal([2, 16]), [1, 2]))
    logits = d(model.inputs(images, [1, 2]))
    assert images.dtype == logits.dtype == tf.float32
    assert all(w.dtype == tf.float32 for w in g.weights + d.weights)


def test_standing_statistics_of_a_conditional_generator_default_to_every_digit():
    generator = model.build_generator(16, 8, num_classes=10)
    z = tf.random.stateless_normal([200, 16], seed=[1, 2]) * 3
    model.set_standing_statistics(generator, z)  # digits 0-9 in turn
    np.testing.assert_allclose(
        generator(model.inputs(z, np.arange(200) % 10), training=False),
        generator(model.inputs(z, np.arange(200) % 10), training=True),
        atol=1e-5,
    )
