"""Dropout with 16-bit random draws: the same distribution as Keras' Dropout at half the
random-number work, which is what dropout costs on CPU.

Keras' TensorFlow dropout (tf.nn.experimental.stateless_dropout) draws one 32-bit Philox
number per element and then selects. On a CPU training step of MiniLM in mixed_bfloat16 that
random generation and select were ~35% of op time (the attention-probability dropout alone is
[batch, heads, length, length] per layer; bench/README.md has the profile). Here each 32-bit
draw gives two 16-bit ones, an element is kept when its draw is >= round(rate * 65536), and
kept elements are scaled by 65536 / (65536 - threshold), so the output's expectation equals
the input exactly (the keep probability is within 1/131072 of 1 - rate).

keras-hub builds its Dropout layers inside its transformer blocks, so the "dropout" kernel
(esci_tf.models.kernels.install) switches every `keras.layers.Dropout` of a model to
`FastDropout` in place: a subclass with the same config and the same seed-generator state, so
weights, checkpoints and the saved model's config do not change (CrossEncoder installs it
again when it is rebuilt from config).

>>> import numpy as np, keras
>>> layer = FastDropout(0.25, seed=1)
>>> out = np.asarray(layer(np.ones((1000, 100), "float32"), training=True))
>>> bool(abs((out == 0).mean() - 0.25) < 0.01), bool(abs(out.mean() - 1.0) < 0.02)
(True, True)
"""

import keras
import tensorflow as tf

from esci_tf.models.kernels import keras_internals

RANDOM_BITS = 16
_RANGE = 1 << RANDOM_BITS


def drop_threshold(rate: float) -> int:
    """16-bit draws below this are dropped: round(rate * 65536), so P(drop) ~ rate."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    return int(round(rate * _RANGE))


def _int32_seed(seed):
    """A stateless-RNG seed [2] int32 from a Keras seed-generator draw (any integer dtype)."""
    seed = tf.convert_to_tensor(seed)
    if seed.dtype == tf.int32:
        return seed
    return tf.cast(tf.math.floormod(tf.cast(seed, tf.int64), tf.int32.max - 1), tf.int32)


def keep_mask(shape, threshold: int, seed):
    """Boolean keep mask of `shape` from 16-bit stateless draws (seed: [2] integers): an
    element is kept when its draw is >= threshold (drop_threshold(rate))."""
    shape = tf.convert_to_tensor(shape, tf.int32)
    count = tf.reduce_prod(shape)
    words = tf.random.stateless_uniform(
        [(count + 1) // 2], seed=_int32_seed(seed), minval=None, maxval=None, dtype=tf.uint32
    )
    draws = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:count]
    return tf.reshape(draws >= tf.constant(threshold, tf.uint16), shape)


def fast_dropout(inputs, rate: float, seed, noise_shape=None):
    """inputs with elements dropped at `rate` and the rest scaled to keep the expectation;
    `noise_shape` broadcasts one mask over dimensions of size 1, as in Keras."""
    if rate == 0.0:
        return inputs
    threshold = drop_threshold(rate)
    shape = tf.shape(inputs) if noise_shape is None else _noise_shape(inputs, noise_shape)
    scale = tf.constant(_RANGE / (_RANGE - threshold), inputs.dtype)
    return inputs * (tf.cast(keep_mask(shape, threshold, seed), inputs.dtype) * scale)


def _noise_shape(inputs, noise_shape):
    """Keras noise_shape with None entries taken from the input's shape."""
    dynamic = tf.shape(inputs)
    return tf.stack([dynamic[i] if d is None else tf.constant(d, tf.int32) for i, d in enumerate(noise_shape)])


@keras.saving.register_keras_serializable(package="esci_tf")
class FastDropout(keras.layers.Dropout):
    """keras.layers.Dropout drawing 16-bit random numbers (see the module docstring)."""

    def call(self, inputs, training=False):
        if training and self.rate > 0:
            return fast_dropout(inputs, self.rate, self.seed_generator.next(), self.noise_shape)
        return inputs


def takes(layer) -> bool:
    """Whether `layer` gets the kernel: a plain keras.layers.Dropout (not a subclass)."""
    return type(layer) is keras.layers.Dropout


def install_on(layer) -> None:
    """Switches `layer` to FastDropout in place; it keeps its rate, noise shape and seed state."""
    keras_internals.switch_class(layer, FastDropout)
