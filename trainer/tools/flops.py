"""FLOPs of the networks from their layer shapes, and the matmul peak they are compared
with: the arithmetic behind the bench's and the layer profile's GFLOP/s."""

import time

import tensorflow as tf

from trainer import model
from trainer.train_config import TrainConfig

MATMUL_SIZE = 2048
PEAK_SECONDS = 3.0  # per matmul peak: the best of repeated timings over this long


def layer_flops(net) -> int:
    """Floating-point operations of one image's forward pass through `net`'s conv and
    dense layers (batch norm and activations, a few per value, are left out).

    Multiply-adds per image, each counted as 2 FLOPs:
      Conv2D:          out_h * out_w * out_c * k_h * k_w * in_c
      Conv2DTranspose: in_h * in_w * in_c * k_h * k_w * out_c  (each input pixel
                       scatters a k_h x k_w x out_c patch)
      Dense:           in_features * out_features
    """
    return sum(one_layer_flops(layer) or 0 for layer in net.layers)


def one_layer_flops(layer):
    """One image's forward FLOPs through `layer` as layer_flops counts them, or None for
    a layer it leaves out (not a conv, transposed conv or dense layer)."""
    layers = tf.keras.layers
    if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
        k_h, k_w, *_ = layer.kernel.shape
        _, in_h, in_w, in_c = layer.input.shape
        _, out_h, out_w, out_c = layer.output.shape
        if isinstance(layer, layers.Conv2DTranspose):
            return 2 * in_h * in_w * in_c * k_h * k_w * out_c
        return 2 * out_h * out_w * out_c * k_h * k_w * in_c
    if isinstance(layer, layers.Dense):
        return 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return None


def train_flops_per_image(config: TrainConfig) -> dict:
    """FLOPs of one training image at `config`, from the layer shapes.

    With F_G and F_D the forward FLOPs of the generator and the discriminator, and a
    backward pass costing twice its forward (input and weight gradients):
      G forward + backward                              3 F_G
      D forward + backward on the real image            3 F_D
      D forward + backward on the generated image       3 F_D
      D backward again, into G, on the generator's tape 1 F_D (input gradients only)
      R1 every r1_interval steps: D forward, input gradient, and the backward of
        that gradient (twice the first), about          4 F_D / r1_interval
    """
    g = layer_flops(model.build(config, "generator"))
    d = layer_flops(model.build(config, "discriminator"))
    r1 = 4 * d / config.r1_interval if config.r1_gamma > 0 else 0
    return {
        "generator_forward": g,
        "discriminator_forward": d,
        "train": int(3 * g + 7 * d + r1),
    }


def matmul_peak_gflops(dtype: str = "float32", size: int = None, seconds: float = None) -> float:
    """Best GFLOP/s of a size x size (default MATMUL_SIZE) matmul through TensorFlow
    over ~`seconds` (default PEAK_SECONDS)."""
    size, seconds = size or MATMUL_SIZE, seconds or PEAK_SECONDS
    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    matmul = tf.function(tf.linalg.matmul)
    matmul(a, b).numpy()  # compile and warm up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            result = matmul(a, b)
        result.numpy()
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best
