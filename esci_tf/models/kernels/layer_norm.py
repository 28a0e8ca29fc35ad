"""Layer normalization over the last axis in fewer element-wise passes, with a fused gradient.

keras.layers.LayerNormalization computes in float32 as inv = rsqrt(var + eps) * gamma (a full
[..., hidden] tensor), res = beta - mean * inv, out = x * inv + res: about ten full-size passes,
and in a MiniLM bfloat16 forward on CPU its 13 layer norms were the largest block of work
outside the matmuls (bench/README.md has the profile). `layer_norm` centres once and
scales by the per-row rsqrt: (x - mean) * rstd * gamma + beta, in float32, returned in x's
dtype (faster per [32, 128, 384] bfloat16 call than Keras'; bench/README.md has the timing).
Its gradient is one XLA-compiled function (the forward stays plain TF ops, so SavedModels need
no XLA), the same trick as the "gelu" kernel.

The "layer_norm" kernel (esci_tf.models.kernels.install) puts it on every LayerNormalization
of a model built with axis=-1 (Keras' and keras-hub's default) and both gamma and beta (not
RMS scaling); weights and saved configs do not change.

>>> import numpy as np, keras
>>> x = np.random.default_rng(0).normal(size=(2, 3, 8)).astype("float32")
>>> plain = keras.layers.LayerNormalization(epsilon=1e-6)
>>> bool(np.allclose(layer_norm(x, np.ones(8), np.zeros(8), 1e-6), plain(x), atol=1e-5))
True
"""

import keras
import tensorflow as tf

from esci_tf.models.kernels import keras_internals


def layer_norm(x, gamma, beta, epsilon: float):
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over the last axis, computed in float32
    and returned in x's dtype; gamma and beta [hidden] get float32 gradients."""

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        wide = tf.cast(x, tf.float32)
        mean = tf.reduce_mean(wide, axis=-1, keepdims=True)
        centered = wide - mean
        rstd = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), axis=-1, keepdims=True) + epsilon)
        outputs = tf.cast(centered * rstd * gamma + beta, x.dtype)
        return outputs, lambda upstream: _layer_norm_gradient(x, mean, rstd, gamma, upstream)

    return normalize(tf.convert_to_tensor(x), tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32))


@tf.function(jit_compile=True)
def _layer_norm_gradient(x, mean, rstd, gamma, upstream):
    """(dx, dgamma, dbeta) of layer_norm, in one fused kernel."""
    normalized = (tf.cast(x, tf.float32) - mean) * rstd
    upstream = tf.cast(upstream, tf.float32)
    scaled = upstream * gamma
    dx = rstd * (scaled - tf.reduce_mean(scaled, axis=-1, keepdims=True)
                 - normalized * tf.reduce_mean(scaled * normalized, axis=-1, keepdims=True))
    rows = list(range(len(x.shape) - 1))
    return (tf.cast(dx, x.dtype), tf.reduce_sum(upstream * normalized, axis=rows),
            tf.reduce_sum(upstream, axis=rows))


def _fast_call(self, inputs):
    return tf.cast(layer_norm(inputs, self.gamma, self.beta, self.epsilon), self.compute_dtype)


def _supports(layer) -> bool:
    axes = list(layer.axis) if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    return axes == [-1] and not layer.rms_scaling and layer.gamma is not None and layer.beta is not None


def takes(layer) -> bool:
    """Whether `layer` gets the kernel: a built keras.layers.LayerNormalization over the last
    axis with both gamma and beta (not RMS scaling)."""
    return isinstance(layer, keras.layers.LayerNormalization) and layer.built and _supports(layer)


def install_on(layer) -> None:
    """Runs layer_norm as `layer`'s call."""
    keras_internals.replace_call(layer, _fast_call)
