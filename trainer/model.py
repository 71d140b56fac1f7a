"""The DCGAN networks, at MNIST's native 28x28. Pure: no I/O, flags or seeds.

Radford et al. 2015 (DCGAN): all-convolutional nets, batch norm everywhere but the
generator's output and the discriminator's input, LeakyReLU(0.2), tanh output, weights
drawn from N(0, 0.02).
"""

import tensorflow as tf

keras = tf.keras
layers = keras.layers

LEAKY_SLOPE = 0.2  # DCGAN paper.
NUM_CLASSES = 10  # MNIST's digits, for the class-conditional networks.


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)  # DCGAN paper.


def _policy(precision: str) -> str:
    """Keras dtype policy: weights stay float32 either way; "bfloat16" computes in it."""
    return {"float32": "float32", "bfloat16": "mixed_bfloat16"}[precision]


def build_generator(
    latent_dim: int = 100,
    width: int = 64,
    precision: str = "float32",
    depth: int = 0,
    synchronized: bool = False,
    num_classes: int = 0,
) -> keras.Model:
    """Maps noise, and with num_classes a digit, to images.

    Args:
      latent_dim: length of z.
      width: channels at 14x14; the 7x7 layer has 2 * width.
      precision: "float32", or "bfloat16" for mixed precision (float32 weights, output
        and checkpoints either way, so the two load each other's weights).
      depth: 3x3 convolutions (batch norm, LeakyReLU) added at 7x7 and at 14x14.
      synchronized: batch norm computes its statistics over the global batch of every
        replica of a tf.distribute strategy, so N replicas of b/N images normalize as
        one device of b does (same variables either way).
      num_classes: 0 for an unconditional generator; else the digit's learned
        embedding of LABEL_EMBEDDING values is joined to z (Mirza and Osindero 2014
        join the one-hot digit itself), so the first layer maps both.

    Returns:
      A model from z, float32 (batch, latent_dim), to images, float32
      (batch, 28, 28, 1) in [-1, 1]; with num_classes, from [z, labels], labels
      float32 (batch, num_classes), one-hot (see `inputs`) or a mix of digits.
    """
    dtype = _policy(precision)
    z = keras.Input(shape=(latent_dim,), name="z")
    labels = keras.Input(shape=(num_classes,), name="labels") if num_classes else None
    norm = _Norm(dtype, synchronized)
    x = z
    if num_classes:
        x = layers.Concatenate(dtype=dtype)([z, _label_embedding(labels, dtype)])
    inputs = x.shape[-1]  # latent_dim, + LABEL_EMBEDDING when conditional
    x = layers.Reshape((1, 1, inputs), dtype=dtype)(x)  # (B, 1, 1, inputs)
    # A 7x7 transposed conv on a 1x1 input is the projection, without a dense layer.
    x = layers.Conv2DTranspose(
        2 * width,
        7,
        padding="valid",
        use_bias=False,
        kernel_initializer=_init(),
        dtype=dtype,
    )(x)  # (B, 7, 7, 2w)
    x = _convs(norm(x), 2 * width, depth, dtype, norm)
    # Kernel 4 with stride 2 covers each output pixel evenly: no checkerboard.
    x = layers.Conv2DTranspose(
        width,
        4,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer=_init(),
        dtype=dtype,
    )(x)  # (B, 14, 14, w)
    x = _convs(norm(x), width, depth, dtype, norm)
    x = layers.Conv2DTranspose(
        1, 4, strides=2, padding="same", kernel_initializer=_init(), dtype=dtype
    )(x)  # (B, 28, 28, 1)
    images = layers.Activation("tanh", dtype="float32")(x)  # No batch norm on the output.
    if num_classes:
        return keras.Model([z, labels], images, name="conditional_generator")
    return keras.Model(z, images, name="generator")


def _convs(x, channels, count, dtype, norm):
    """`count` same-size 3x3 convolutions, each followed by `norm` (batch norm and
    LeakyReLU): depth at a resolution without changing it (shape kept)."""
    for _ in range(count):
        x = norm(
            layers.Conv2D(
                channels,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer=_init(),
                dtype=dtype,
            )(x)
        )
    return x


# Values of the digit's learned embedding that the generator joins to z. Each one
# widens the first layer by 7 * 7 * 2w weights, four copies of which a checkpoint holds
# (weights, average, two Adam moments): 5 keeps the conditional checkpoint within
# 32 MiB, where the one-hot digit itself (10) would not.
LABEL_EMBEDDING = 5


def _label_embedding(labels, dtype):
    """Each image's digit as its learned embedding, float (B, LABEL_EMBEDDING): the
    product of the label vector with a (num_classes, LABEL_EMBEDDING) table, so a mix
    of two digits' labels mixes their embeddings (trainer.interpolate's walks).

    Why joined to z and not class-conditional batch norm (a per-digit scale and shift
    after every batch norm): with it each digit's samples varied half as much in stroke
    weight as real ones, and the Frechet distance was twice as far after 2 epochs
    (docs/results.md).
    """
    return layers.Dense(LABEL_EMBEDDING, use_bias=False, dtype=dtype)(labels)


class _Norm:
    """Batch norm then LeakyReLU, applied to a (B, H, W, C) tensor."""

    def __init__(self, dtype, synchronized=False):
        self.dtype, self.synchronized = dtype, synchronized

    def __call__(self, x):
        x = layers.BatchNormalization(synchronized=self.synchronized, dtype=self.dtype)(x)
        return layers.LeakyReLU(LEAKY_SLOPE, dtype=self.dtype)(x)


def build_discriminator(
    width: int = 64,
    precision: str = "float32",
    depth: int = 0,
    synchronized: bool = False,
    num_classes: int = 0,
    projection: bool = False,
) -> keras.Model:
    """Scores images, or with num_classes images and their digits: real high,
    generated low.

    Args:
      width: channels at 14x14; the 7x7 layer has 2 * width.
      precision: "float32" or "bfloat16", as for build_generator.
      depth: 3x3 convolutions (batch norm, LeakyReLU) added at 14x14 and at 7x7.
      synchronized: batch norm over the global batch of all replicas, as for
        build_generator.
      num_classes: 0 for an unconditional discriminator; else the digit enters
        beside the image as num_classes constant planes, its one-hot label vector at
        every pixel (Mirza and Osindero 2014's conditional GAN), so every layer
        judges image and digit together.
      projection: with num_classes, the logit also adds the inner product of the
        digit's learned embedding with the 7x7 features summed over positions (the
        projection discriminator of Miyato and Koyama 2018, here as a 1x1 convolution
        with one output per digit): a linear read-out of the digit from the last
        features, 2w values a digit.

    Returns:
      A model from images, float32 (batch, 28, 28, 1) in [-1, 1], to logits,
      float32 (batch, 1); with num_classes, from [images, labels], labels float32
      (batch, num_classes) one-hot (see `inputs`).
    """
    dtype = _policy(precision)
    norm = _Norm(dtype, synchronized)
    images = keras.Input(shape=(28, 28, 1), name="images")
    x = images
    if num_classes:
        labels = keras.Input(shape=(num_classes,), name="labels")
        planes = layers.UpSampling2D(28, dtype=dtype)(
            layers.Reshape((1, 1, num_classes), dtype=dtype)(labels)
        )  # (B, 28, 28, num_classes)
        x = layers.Concatenate(dtype=dtype)([images, planes])  # (B, 28, 28, 1 + classes)
    # No batch norm on the input layer (DCGAN paper: it made training unstable).
    x = layers.Conv2D(width, 4, strides=2, padding="same", kernel_initializer=_init(), dtype=dtype)(
        x
    )  # (B, 14, 14, w)
    x = _convs(layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x), width, depth, dtype, norm)
    x = layers.Conv2D(
        2 * width,
        4,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer=_init(),
        dtype=dtype,
    )(x)  # (B, 7, 7, 2w)
    features = _convs(norm(x), 2 * width, depth, dtype, norm)  # (B, 7, 7, 2w)
    x = layers.Conv2D(1, 7, padding="valid", kernel_initializer=_init(), dtype=dtype)(
        features
    )  # (B, 1, 1, 1)
    logits = layers.Flatten(dtype="float32")(x)  # (B, 1)
    if num_classes and projection:
        logits = layers.Add(dtype="float32")([logits, _projection(features, labels, dtype)])
    if num_classes:
        return keras.Model([images, labels], logits, name="conditional_discriminator")
    return keras.Model(images, logits, name="discriminator")


def _projection(features, labels, dtype):
    """<embedding of the digit, features summed over positions>, float32 (B, 1).

    A sum, not a mean, so each embedding value moves the logit as much per step as a
    weight of the 7x7 convolution beside it does (both read 7 * 7 * 2w features).
    """
    positions = features.shape[1] * features.shape[2]
    pooled = layers.GlobalAveragePooling2D(keepdims=True, dtype=dtype)(features)
    pooled = layers.Rescaling(float(positions), dtype=dtype)(pooled)  # (B, 1, 1, 2w)
    scores = layers.Conv2D(
        labels.shape[-1], 1, use_bias=False, kernel_initializer=_init(), dtype=dtype
    )(pooled)  # (B, 1, 1, num_classes): each digit's
    scores = layers.Flatten(dtype="float32")(scores)  # (B, num_classes)
    return layers.Dot(axes=1, dtype="float32")([scores, labels])  # the asked digit's


def num_classes(network: keras.Model) -> int:
    """The digits a class-conditional network (one taking [x, labels]) knows, else 0."""
    return network.inputs[1].shape[-1] if len(network.inputs) == 2 else 0


def inputs(x, labels=None, num_classes: int = NUM_CLASSES):
    """What a network built here takes: `x` alone, or [x, one-hot labels] for a
    conditional one.

    Args:
      x: the network's first input (z or images), array or tensor.
      labels: None; integer digits (B,); or float (B, num_classes) label vectors
        (one-hot or mixed), passed as they are.

    Returns:
      x, or [x, float32 (B, num_classes)] as tensors (Keras refuses a list that mixes
      tensors and arrays).
    """
    if labels is None:
        return x
    labels = tf.convert_to_tensor(labels)
    if labels.dtype.is_integer:
        labels = tf.one_hot(labels, num_classes)
    return [tf.convert_to_tensor(x), tf.cast(labels, tf.float32)]


def set_standing_statistics(generator: keras.Model, z, labels=None) -> None:
    """Sets each batch-norm layer's moving mean and variance to its statistics over the
    batch `z` (the "standing statistics" of Brock et al. 2018).

    A weight average must not borrow the moving statistics of the raw weights it
    averages: its layers see other activations, and the mismatch narrows its digits'
    variety (docs/results.md, What each default bought).

    Args:
      generator: built by generator_for; its batch-norm layers are updated in place.
      z: float32 (N, latent_dim) noise; a few thousand rows give stable statistics.
      labels: int (N,) digits for a conditional generator; None gives it every digit
        equally often (row i draws digit i mod 10).
    """
    if labels is None and num_classes(generator):
        labels = tf.range(tf.shape(z)[0]) % num_classes(generator)
    norms = [layer for layer in generator.layers if isinstance(layer, layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 0.0  # moving statistic = this batch's statistic
        generator(inputs(z, labels), training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def build_mlp_generator(
    latent_dim: int = 100, precision: str = "float32", synchronized: bool = False
) -> keras.Model:
    """The fully connected generator the GAN tutorials start from: z -> 256 -> 512 ->
    1024 (each batch norm, LeakyReLU) -> 784 tanh, shaped as images.

    Returns:
      A model from z, float32 (batch, latent_dim), to images, float32
      (batch, 28, 28, 1) in [-1, 1].
    """
    dtype = _policy(precision)
    z = keras.Input(shape=(latent_dim,), name="z")
    x = z
    for units in (256, 512, 1024):
        x = layers.Dense(units, use_bias=False, kernel_initializer=_init(), dtype=dtype)(x)
        x = _Norm(dtype, synchronized)(x)
    x = layers.Dense(28 * 28, kernel_initializer=_init(), dtype=dtype)(x)  # (B, 784)
    x = layers.Activation("tanh", dtype="float32")(x)
    images = layers.Reshape((28, 28, 1), dtype="float32")(x)
    return keras.Model(z, images, name="mlp_generator")


def build_mlp_discriminator(precision: str = "float32") -> keras.Model:
    """The tutorials' fully connected discriminator: 784 -> 512 -> 256 (LeakyReLU) -> 1.

    Returns:
      A model from images, float32 (batch, 28, 28, 1) in [-1, 1], to logits,
      float32 (batch, 1).
    """
    dtype = _policy(precision)
    images = keras.Input(shape=(28, 28, 1), name="images")
    x = layers.Flatten(dtype=dtype)(images)  # (B, 784)
    for units in (512, 256):
        x = layers.Dense(units, kernel_initializer=_init(), dtype=dtype)(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)
    logits = layers.Dense(1, kernel_initializer=_init(), dtype="float32")(x)  # (B, 1)
    return keras.Model(images, logits, name="mlp_discriminator")


def generator_for(
    arch: str,
    latent_dim: int,
    width: int,
    precision: str = "float32",
    depth: int = 0,
    synchronized: bool = False,
    num_classes: int = 0,
):
    """The generator of architecture `arch` ("dcgan" or "mlp"; mlp ignores width and
    depth, and has no conditional form: TrainConfig refuses it)."""
    if arch == "mlp":
        return build_mlp_generator(latent_dim, precision, synchronized)
    return build_generator(latent_dim, width, precision, depth, synchronized, num_classes)


def discriminator_for(
    arch: str,
    width: int,
    precision: str = "float32",
    depth: int = 0,
    synchronized: bool = False,
    num_classes: int = 0,
    projection: bool = False,
):
    """The discriminator of architecture `arch` ("dcgan" or "mlp"; mlp ignores width,
    depth and synchronized: it has no batch norm)."""
    if arch == "mlp":
        return build_mlp_discriminator(precision)
    return build_discriminator(width, precision, depth, synchronized, num_classes, projection)
