"""The networks: the DCGAN family, sized by the image spec, and the fully connected
baseline. Pure: no I/O, flags or seeds. `build` is the one place a run's networks are
made from its config.

Radford et al. 2015 (DCGAN): all-convolutional nets, batch norm everywhere but the
generator's output and the discriminator's input, LeakyReLU(0.2), tanh output, weights
drawn from N(0, 0.02). The DCGAN nets halve the resolution with 4x4 stride-2 layers
from the image size down to a base of 4 to 7 pixels (MNIST's 28: 14, then 7; 64: 32,
16, 8, then 4), doubling the channels at each step, as the paper's 64x64 nets do.
"""

import tensorflow as tf

from trainer.image_spec import MNIST, ImageSpec

keras = tf.keras
layers = keras.layers

LEAKY_SLOPE = 0.2  # DCGAN paper.
NETWORKS = ("generator", "discriminator")


def build(config, network: str, precision: str = "float32", synchronized: bool = False):
    """The run's generator or discriminator, as its config describes them.

    Args:
      config: the run's TrainConfig: arch, latent_dim, widths, depths, conditional,
        projection and the image spec it trains on.
      network: "generator" or "discriminator".
      precision: "float32", or "bfloat16" for mixed precision (float32 weights, output
        and checkpoints either way, so the two load each other's weights).
      synchronized: batch norm computes its statistics over the global batch of every
        replica of a tf.distribute strategy, so N replicas of b/N images normalize as
        one device of b does (same variables either way).
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got {network!r}")
    spec, classes = config.image, config.num_classes
    if config.arch == "mlp":
        if network == "generator":
            return build_mlp_generator(config.latent_dim, precision, synchronized, spec)
        return build_mlp_discriminator(precision, spec)
    if network == "generator":
        return build_generator(
            config.latent_dim,
            config.generator_width,
            precision,
            config.generator_depth,
            synchronized,
            classes,
            spec,
        )
    return build_discriminator(
        config.discriminator_width,
        precision,
        config.discriminator_depth,
        synchronized,
        classes,
        config.projection,
        spec,
    )


def _init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)  # DCGAN paper.


def _policy(precision: str) -> str:
    """Keras dtype policy: weights stay float32 either way; "bfloat16" computes in it."""
    return {"float32": "float32", "bfloat16": "mixed_bfloat16"}[precision]


def hidden_sizes(spec: ImageSpec) -> list:
    """The DCGAN nets' hidden resolutions, coarsest first: the image size halved while
    it stays even and at least 4 (28 -> [7, 14], 32 -> [4, 8, 16], 64 -> [4, 8, 16, 32]).

    Raises:
      ValueError: the images are not square, or their size is odd (no stride-2 layer
        fits).
    """
    if spec.height != spec.width:
        raise ValueError(
            f"the DCGAN networks need square images, got {spec.height}x{spec.width}; "
            "crop or resize them to a square"
        )
    sizes, size = [], spec.height
    while size % 2 == 0 and size // 2 >= 4:
        size //= 2
        sizes.insert(0, size)
    if not sizes:
        raise ValueError(f"image size {spec.height} cannot be halved; use an even size such as 32")
    return sizes


def build_generator(
    latent_dim: int = 100,
    width: int = 64,
    precision: str = "float32",
    depth: int = 0,
    synchronized: bool = False,
    num_classes: int = 0,
    spec: ImageSpec = MNIST,
) -> keras.Model:
    """Maps noise, and with num_classes a class, to images of `spec`.

    Args:
      latent_dim: length of z.
      width: channels at the finest hidden resolution (14x14 for 28x28 images); each
        coarser one has twice as many (7x7: 2 * width).
      precision, synchronized: as for `build`.
      depth: 3x3 convolutions (batch norm, LeakyReLU) added at each hidden resolution.
      num_classes: 0 for an unconditional generator; else the class's learned
        embedding of LABEL_EMBEDDING values is joined to z (Mirza and Osindero 2014
        join the one-hot class itself), so the first layer maps both.
      spec: the images' size and channels.

    Returns:
      A model from z, float32 (batch, latent_dim), to images, float32
      (batch, H, W, C) in [-1, 1]; with num_classes, from [z, labels], labels
      float32 (batch, num_classes), one-hot (see `inputs`) or a mix of classes.
    """
    dtype = _policy(precision)
    sizes = hidden_sizes(spec)
    channels = [width * 2 ** (len(sizes) - 1 - i) for i in range(len(sizes))]
    z = keras.Input(shape=(latent_dim,), name="z")
    labels = keras.Input(shape=(num_classes,), name="labels") if num_classes else None
    norm = _Norm(dtype, synchronized)
    x = z
    if num_classes:
        x = layers.Concatenate(dtype=dtype)([z, _label_embedding(labels, dtype)])
    inputs = x.shape[-1]  # latent_dim, + LABEL_EMBEDDING when conditional
    x = layers.Reshape((1, 1, inputs), dtype=dtype)(x)  # (B, 1, 1, inputs)
    # A base x base transposed conv on a 1x1 input is the projection, without a dense layer.
    x = layers.Conv2DTranspose(
        channels[0],
        sizes[0],
        padding="valid",
        use_bias=False,
        kernel_initializer=_init(),
        dtype=dtype,
    )(x)  # (B, base, base, channels[0])
    x = _convs(norm(x), channels[0], depth, dtype, norm)
    for count in channels[1:]:
        # Kernel 4 with stride 2 covers each output pixel evenly: no checkerboard.
        x = layers.Conv2DTranspose(
            count,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=_init(),
            dtype=dtype,
        )(x)  # twice the size, half the channels
        x = _convs(norm(x), count, depth, dtype, norm)
    x = layers.Conv2DTranspose(
        spec.channels, 4, strides=2, padding="same", kernel_initializer=_init(), dtype=dtype
    )(x)  # (B, H, W, C)
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
    spec: ImageSpec = MNIST,
) -> keras.Model:
    """Scores images of `spec`, or with num_classes images and their classes: real
    high, generated low.

    Args:
      width: channels at the finest hidden resolution (14x14 for 28x28 images); each
        coarser one has twice as many.
      precision, synchronized: as for `build`.
      depth: 3x3 convolutions (batch norm, LeakyReLU) added at each hidden resolution.
      num_classes: 0 for an unconditional discriminator; else the class enters
        beside the image as num_classes constant planes, its one-hot label vector at
        every pixel (Mirza and Osindero 2014's conditional GAN), so every layer
        judges image and class together.
      projection: with num_classes, the logit also adds the inner product of the
        class's learned embedding with the last features summed over positions (the
        projection discriminator of Miyato and Koyama 2018, here as a 1x1 convolution
        with one output per class): a linear read-out of the class from the last
        features.
      spec: the images' size and channels.

    Returns:
      A model from images, float32 (batch, H, W, C) in [-1, 1], to logits,
      float32 (batch, 1); with num_classes, from [images, labels], labels float32
      (batch, num_classes) one-hot (see `inputs`).
    """
    dtype = _policy(precision)
    sizes = hidden_sizes(spec)[::-1]  # finest first
    norm = _Norm(dtype, synchronized)
    images = keras.Input(shape=spec.shape, name="images")
    x = images
    if num_classes:
        labels = keras.Input(shape=(num_classes,), name="labels")
        planes = layers.UpSampling2D((spec.height, spec.width), dtype=dtype)(
            layers.Reshape((1, 1, num_classes), dtype=dtype)(labels)
        )  # (B, H, W, num_classes)
        x = layers.Concatenate(dtype=dtype)([images, planes])  # (B, H, W, C + classes)
    # No batch norm on the input layer (DCGAN paper: it made training unstable).
    x = layers.Conv2D(width, 4, strides=2, padding="same", kernel_initializer=_init(), dtype=dtype)(
        x
    )  # (B, H/2, W/2, w)
    x = _convs(layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x), width, depth, dtype, norm)
    for index in range(1, len(sizes)):
        x = layers.Conv2D(
            width * 2**index,
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=_init(),
            dtype=dtype,
        )(x)  # half the size, twice the channels
        x = _convs(norm(x), width * 2**index, depth, dtype, norm)
    features = x  # (B, base, base, channels)
    x = layers.Conv2D(1, sizes[-1], padding="valid", kernel_initializer=_init(), dtype=dtype)(
        features
    )  # (B, 1, 1, 1)
    logits = layers.Flatten(dtype="float32")(x)  # (B, 1)
    if num_classes and projection:
        logits = layers.Add(dtype="float32")([logits, _projection(features, labels, dtype)])
    if num_classes:
        return keras.Model([images, labels], logits, name="conditional_discriminator")
    return keras.Model(images, logits, name="discriminator")


def _projection(features, labels, dtype):
    """<embedding of the class, features summed over positions>, float32 (B, 1).

    A sum, not a mean, so each embedding value moves the logit as much per step as a
    weight of the base x base convolution beside it does (both read every feature).
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
    """The classes a class-conditional network (one taking [x, labels]) knows, else 0."""
    return network.inputs[1].shape[-1] if len(network.inputs) == 2 else 0


def inputs(x, labels=None, num_classes: int = None):
    """What a network built here takes: `x` alone, or [x, one-hot labels] for a
    conditional one.

    Args:
      x: the network's first input (z or images), array or tensor.
      labels: None; integer classes (B,); or float (B, num_classes) label vectors
        (one-hot or mixed), passed as they are.
      num_classes: the one-hot length of integer labels; None takes MNIST's ten.

    Returns:
      x, or [x, float32 (B, num_classes)] as tensors (Keras refuses a list that mixes
      tensors and arrays).
    """
    if labels is None:
        return x
    labels = tf.convert_to_tensor(labels)
    if labels.dtype.is_integer:
        labels = tf.one_hot(labels, num_classes or MNIST.num_classes)
    return [tf.convert_to_tensor(x), tf.cast(labels, tf.float32)]


def set_standing_statistics(generator: keras.Model, z, labels=None) -> None:
    """Sets each batch-norm layer's moving mean and variance to its statistics over the
    batch `z` (the "standing statistics" of Brock et al. 2018).

    A weight average must not borrow the moving statistics of the raw weights it
    averages: its layers see other activations, and the mismatch narrows its digits'
    variety (docs/results.md, What each default bought).

    Args:
      generator: built by `build`; its batch-norm layers are updated in place.
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
        generator(inputs(z, labels, num_classes(generator)), training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def build_mlp_generator(
    latent_dim: int = 100,
    precision: str = "float32",
    synchronized: bool = False,
    spec: ImageSpec = MNIST,
) -> keras.Model:
    """The fully connected generator the GAN tutorials start from: z -> 256 -> 512 ->
    1024 (each batch norm, LeakyReLU) -> H * W * C tanh, shaped as images of `spec`.

    Returns:
      A model from z, float32 (batch, latent_dim), to images, float32
      (batch, H, W, C) in [-1, 1].
    """
    dtype = _policy(precision)
    z = keras.Input(shape=(latent_dim,), name="z")
    x = z
    for units in (256, 512, 1024):
        x = layers.Dense(units, use_bias=False, kernel_initializer=_init(), dtype=dtype)(x)
        x = _Norm(dtype, synchronized)(x)
    pixels = spec.height * spec.width * spec.channels
    x = layers.Dense(pixels, kernel_initializer=_init(), dtype=dtype)(x)  # (B, H * W * C)
    x = layers.Activation("tanh", dtype="float32")(x)
    images = layers.Reshape(spec.shape, dtype="float32")(x)
    return keras.Model(z, images, name="mlp_generator")


def build_mlp_discriminator(precision: str = "float32", spec: ImageSpec = MNIST) -> keras.Model:
    """The tutorials' fully connected discriminator: H * W * C -> 512 -> 256 (LeakyReLU)
    -> 1.

    Returns:
      A model from images, float32 (batch, H, W, C) in [-1, 1], to logits,
      float32 (batch, 1).
    """
    dtype = _policy(precision)
    images = keras.Input(shape=spec.shape, name="images")
    x = layers.Flatten(dtype=dtype)(images)  # (B, H * W * C)
    for units in (512, 256):
        x = layers.Dense(units, kernel_initializer=_init(), dtype=dtype)(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, dtype=dtype)(x)
    logits = layers.Dense(1, kernel_initializer=_init(), dtype="float32")(x)  # (B, 1)
    return keras.Model(images, logits, name="mlp_discriminator")
