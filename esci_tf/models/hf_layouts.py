"""How Hugging Face (torch) tensors map onto Keras variables: `port_weight` hooks that also
say which checkpoint shape they expect, so a mis-shaped weight is caught before any reshape.

>>> import numpy as np
>>> LINEAR.hf_shape((32, 4, 8))  # torch Linear [out, in] -> EinsumDense kernel [in, heads, dim]
(32, 32)
>>> LINEAR(np.zeros((64, 32)), [32, 64]).shape
(32, 64)
>>> BIAS.hf_shape((4, 8))
(32,)
"""

import math

import numpy as np


class Layout:
    """A `hook_fn(hf_tensor, keras_shape)` with `hf_shape(keras_shape)`: the shape it maps."""

    def __init__(self, name, to_keras, hf_shape):
        self.name = name
        self._to_keras = to_keras
        self.hf_shape = hf_shape

    def __call__(self, hf_tensor, keras_shape):
        return self._to_keras(hf_tensor, keras_shape)

    def __repr__(self):
        return f"Layout({self.name!r})"


def _linear(num_in):
    """torch Linear [out, in] -> Keras kernel [in..., out...] with `num_in` input axes."""
    return Layout(
        f"linear_{num_in}_in",
        lambda t, shape: np.reshape(np.transpose(t), shape),
        lambda shape: (math.prod(shape[num_in:]), math.prod(shape[:num_in])),
    )


LINEAR = _linear(1)
LINEAR_2_IN = _linear(2)  # e.g. an attention output kernel [heads, head_dim, hidden]
# HF [n] -> any Keras shape with n elements (e.g. [heads, head_dim]).
BIAS = Layout("bias", lambda t, shape: np.reshape(t, shape), lambda shape: (math.prod(shape),))


def port_dense(loader, layer, hf_name, kernel_layout=LINEAR):
    """`hf_name`.weight / .bias onto a Dense or EinsumDense layer."""
    loader.port_weight(layer.kernel, f"{hf_name}.weight", kernel_layout)
    loader.port_weight(layer.bias, f"{hf_name}.bias", BIAS)


def port_layer_norm(loader, layer, hf_name):
    """`hf_name`.weight / .bias onto a LayerNormalization layer."""
    loader.port_weight(layer.gamma, f"{hf_name}.weight")
    loader.port_weight(layer.beta, f"{hf_name}.bias")
