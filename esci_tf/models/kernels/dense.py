"""Dense and EinsumDense projections as one 2-D MatMul + BiasAdd (+ GELU) that oneDNN fuses.

Keras' Dense runs on [batch, length, hidden] inputs as a tensordot (reshape, MatMul,
reshape) followed by a separate bias add and activation; the attention projections of
keras.layers.MultiHeadAttention are EinsumDense einsums ("abc,cde->abde") that TensorFlow
lowers to a broadcast batched matmul. On CPU with oneDNN (TensorFlow's default on x86),
Grappler's remapper fuses MatMul + BiasAdd (+ exact GELU, + a residual Add) into one
_MklNativeFusedMatMul, but only when it sees exactly those ops on a 2-D MatMul. `dense_2d`
and `einsum_dense_2d` compute the same result in that form: flatten the batch axes, one
tf.matmul against the kernel reshaped to 2-D, tf.nn.bias_add, and (for the feed-forward GELU,
at inference) the exact GELU written as the remapper's pattern
x * (0.5 * (1 + erf(x * 0.7071))), so bias, GELU and residual add run inside the matmul
kernel's output loop, in float32 before rounding to bfloat16. In training the layer's own
activation runs (gelu_erf with the "gelu" kernel: its fused gradient; the remapper cannot fuse
what the backward pass needs). Without oneDNN (other CPUs, TF_ENABLE_ONEDNN_OPTS=0) the
inference GELU runs unfused in the layer's dtype.

In a MiniLM mixed_bfloat16 forward on CPU the query/key/value einsums took longer than the
same products as 2-D matmuls, and the whole forward got faster with every projection in this
form (bench/README.md has the profile and the timings).

The "dense" kernel (esci_tf.models.kernels.install) puts them on every plain Dense /
EinsumDense of a model (not on LoRA-enabled or quantized layers, nor on einsums whose
contraction is not a trailing block of the input); weights, variables and saved configs do
not change.
"""

import math

import keras
import tensorflow as tf

from esci_tf.models.kernels import keras_internals
from esci_tf.models.kernels.gelu import _INV_SQRT2, gelu_erf


def gelu_fusable(x):
    """Exact GELU in the op order Grappler's remapper fuses into a preceding MatMul + BiasAdd
    (constants as Cast(float32 Const), values it checks): Mul(Mul(AddV2(Erf(Mul(x, 0.7071)),
    1), 0.5), x). Unfused, it is the plain formula in x's dtype."""
    def const(value):
        return tf.cast(tf.constant(value, tf.float32), x.dtype)

    return tf.multiply(tf.multiply(tf.add(tf.math.erf(tf.multiply(x, const(_INV_SQRT2))), const(1.0)),
                                   const(0.5)), x)


def _is_exact_gelu(activation) -> bool:
    return activation is keras.activations.gelu or activation is gelu_erf


def _project(inputs, kernel, bias, contracted: int, activation):
    """inputs [..., *kernel.shape[:contracted]] @ kernel + bias, then `activation`, as one 2-D
    MatMul + BiasAdd on the flattened batch axes -> [..., *kernel.shape[contracted:]]."""
    inputs, kernel = tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel)
    kept_shape = list(kernel.shape[contracted:])
    width_in, width_out = math.prod(kernel.shape[:contracted]), math.prod(kept_shape)
    outputs = tf.matmul(tf.reshape(inputs, [-1, width_in]), tf.reshape(kernel, [width_in, width_out]))
    if bias is not None:
        outputs = tf.nn.bias_add(outputs, tf.reshape(tf.convert_to_tensor(bias), [width_out]))
    if activation is not None:
        outputs = activation(outputs)
    batch_shape = tf.shape(inputs)[: len(inputs.shape) - contracted]
    return tf.reshape(outputs, tf.concat([batch_shape, kept_shape], axis=0))


def dense_2d(self, inputs, training=None):
    """keras.layers.Dense.call as a 2-D MatMul + BiasAdd (+ fusable exact GELU at inference);
    Keras' own call once the layer has LoRA or quantization switched on."""
    if not _plain(self):
        return keras_internals.keras_call(self, inputs, training=training)
    activation = gelu_fusable if _is_exact_gelu(self.activation) and not training else self.activation
    return _project(inputs, self.kernel, self.bias, 1, activation)


def _einsum_plan(equation: str):
    """(contracted input letters, kept kernel letters) when `equation` contracts a trailing
    block of the input with the leading block of the kernel and keeps the rest in order;
    None otherwise."""
    try:
        inputs, rest = equation.replace(" ", "").split(",")
        kernel, output = rest.split("->")
    except ValueError:
        return None
    contracted = "".join(c for c in kernel if c in inputs and c not in output)
    if not contracted or not kernel.startswith(contracted) or not inputs.endswith(contracted):
        return None
    kept = kernel[len(contracted):]
    batch = inputs[: len(inputs) - len(contracted)]
    if output != batch + kept or set(kept) & set(batch) or len(set(inputs + kernel)) != len(inputs + kept):
        return None
    return contracted, kept


def einsum_dense_2d(self, inputs, training=None):
    """keras.layers.EinsumDense.call as a 2-D MatMul + BiasAdd (installed only where the
    einsum projects the input's trailing axes, see _einsum_plan); Keras' own call once the
    layer has LoRA or quantization switched on."""
    if not _plain(self):
        return keras_internals.keras_call(self, inputs, training=training)
    contracted, _ = self._fast_dense_plan
    return _project(inputs, self.kernel, self.bias, len(contracted), self.activation)


def _plain(layer) -> bool:
    return not getattr(layer, "lora_enabled", False) and getattr(layer, "quantization_mode", None) is None


def _einsum_supported(layer):
    plan = _einsum_plan(layer.equation)
    if plan is None:
        return None
    contracted, kept = plan
    bias_axes = layer.bias_axes or ""
    # Bias must cover every kept kernel axis (or be absent) to be one BiasAdd on the 2-D result.
    if layer.bias is not None and bias_axes != kept:
        return None
    return plan


def takes(layer) -> bool:
    """Whether `layer` gets the kernel: a plain (no LoRA, not quantized) keras.layers.Dense, or
    a built plain EinsumDense whose einsum projects the input's trailing axes with a bias on
    every kept axis or none."""
    if not _plain(layer):
        return False
    if isinstance(layer, keras.layers.Dense):
        return True
    return isinstance(layer, keras.layers.EinsumDense) and layer.built and _einsum_supported(layer) is not None


def install_on(layer) -> None:
    """Runs dense_2d (Dense) or einsum_dense_2d (EinsumDense) as `layer`'s call."""
    if isinstance(layer, keras.layers.Dense):
        keras_internals.replace_call(layer, dense_2d)
    else:
        keras_internals.set_untracked(layer, "_fast_dense_plan", _einsum_supported(layer))
        keras_internals.replace_call(layer, einsum_dense_2d)
