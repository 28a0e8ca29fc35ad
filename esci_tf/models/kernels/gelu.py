"""The exact (erf) GELU computed in float32: for mixed_bfloat16 models on CPU.

Keras' exact GELU runs tf.nn.gelu, whose Erfc kernel has no vectorised bfloat16 path: in a
MiniLM training step under mixed_bfloat16 on CPU, Erfc alone was a sizeable share of the step
(bench/README.md has the profile). `gelu_erf` casts to float32, computes
0.5 * x * (1 + erf(x / sqrt(2))) with TF's vectorised float32 erf and casts back, which is
also the more accurate bfloat16 result. For float32 inputs it equals keras.activations.gelu
to float32 round-off. The "gelu" kernel (esci_tf.models.kernels.install) swaps it into every
Dense whose activation is Keras' exact GELU (keras-hub's and HFBertBackbone's feed-forward
layers); weights and saved configs do not change. The gradient is one XLA-compiled (fused) kernel: unfused it is
about ten float32 element-wise passes; the forward stays plain TF ops, so inference graphs
and SavedModels need no XLA.

>>> import numpy as np, keras
>>> x = np.linspace(-4, 4, 9).astype("float32")
>>> bool(np.allclose(gelu_erf(x), keras.activations.gelu(x), atol=1e-6))
True
"""

import math

import keras
import tensorflow as tf

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@tf.custom_gradient
def gelu_erf(x):
    """Exact GELU, computed in float32, returned in x's dtype."""
    x = tf.convert_to_tensor(x)
    wide = tf.cast(x, tf.float32)
    out = 0.5 * wide * (1.0 + tf.math.erf(wide * _INV_SQRT2))
    return tf.cast(out, x.dtype), lambda upstream: _gelu_erf_gradient(x, upstream)


@tf.function(jit_compile=True)
def _gelu_erf_gradient(x, upstream):
    """upstream * GELU'(x), GELU'(x) = Phi(x) + x * phi(x), in one fused float32 kernel."""
    wide = tf.cast(x, tf.float32)
    derivative = 0.5 * (1.0 + tf.math.erf(wide * _INV_SQRT2)) + wide * _INV_SQRT_2PI * tf.exp(-0.5 * wide * wide)
    return tf.cast(tf.cast(upstream, tf.float32) * derivative, x.dtype)


def takes(layer) -> bool:
    """Whether `layer` gets the kernel: a keras.layers.Dense whose activation is Keras' exact GELU."""
    return isinstance(layer, keras.layers.Dense) and layer.activation is keras.activations.gelu


def install_on(layer) -> None:
    """Sets gelu_erf as `layer`'s activation."""
    layer.activation = gelu_erf
