"""Multi-head attention computed head-major: transposes + batched matmuls instead of einsums.

keras.layers.MultiHeadAttention (which keras-hub's TransformerEncoder blocks use, as does its
CachedMultiHeadAttention subclass) forms the attention scores with
einsum("aecd,abcd->acbe", key, query) on [batch, length, heads, head_dim] tensors. TensorFlow
lowers that to transposes around a batched matmul it cannot fuse well on CPU: for MiniLM
shapes (batch 32, 12 heads x 32, length 128, bfloat16) the scores einsum took about five times
and the context einsum about twice as long as the same products on head-major
[batch, heads, length, head_dim] operands (bench/README.md has the timings).
`head_major_attention` transposes query, key and value once, runs two tf.matmul calls and
transposes the context back; the scale and attention dropout are the layer's own. The mask
becomes an additive bias of shape [B, 1, T, S] (Keras selects twice over the full
[B, N, T, S] scores), applied with the scale as matmul * scale + bias, which Grappler's
remapper fuses into one oneDNN batched matmul on CPU; outputs equal Keras' up to float
round-off.

The "attention" kernel (esci_tf.models.kernels.install) puts it on every MultiHeadAttention
inside a model whose attention runs over one sequence axis (4-D projections); causal, flash
and multi-axis attention keep Keras' implementation. Weights and configs do not change.
"""

import keras
import tensorflow as tf

from esci_tf.models.kernels import keras_internals

_HEAD_MAJOR = [0, 2, 1, 3]  # [B, L, N, D] <-> [B, N, L, D]


def head_major_attention(layer, query, key, value, attention_mask=None, training=None,
                         return_scores=True):
    """MultiHeadAttention._compute_attention of `layer` on head-major matmuls.

    query [B, T, N, D], key [B, S, N, D], value [B, S, N, Dv] -> ([B, T, N, Dv], scores
    [B, N, T, S]), as Keras' implementation returns them. return_scores False: the scores
    of fully masked rows (padded queries, never read) are left uniform instead of zeroed.
    """
    scale = keras_internals.attention_scale(layer)
    k = tf.transpose(key, _HEAD_MAJOR)
    v = tf.transpose(value, _HEAD_MAJOR)
    if attention_mask is None:
        q = tf.transpose(query * tf.cast(scale, query.dtype), _HEAD_MAJOR)
        scores, rows_kept = keras_internals.attention_softmax(layer, tf.matmul(q, k, transpose_b=True)), None
    else:
        bias, rows_kept = _mask_bias(attention_mask, query.dtype, rank=len(query.shape))
        # BatchMatMul * scale + bias: the op pattern oneDNN runs as one fused batched matmul.
        logits = tf.add(tf.multiply(tf.matmul(tf.transpose(query, _HEAD_MAJOR), k, transpose_b=True),
                                    tf.constant(scale, query.dtype)), bias)
        scores = tf.nn.softmax(logits)
        if return_scores:
            scores, rows_kept = scores * rows_kept, None
    probs = (keras_internals.attention_dropout(layer, scores, training)
             if keras_internals.attention_dropout_rate(layer) > 0.0 else scores)
    context = tf.matmul(probs, v)
    if rows_kept is not None:  # zeroing context rows == zeroing their (all-masked) score rows
        context = context * rows_kept
    return tf.transpose(context, _HEAD_MAJOR), scores


def _mask_bias(attention_mask, dtype, rank: int):
    """Keras' masked softmax in fewer full-size passes: (additive bias [B, 1, T, S], 0 where
    attended and -1e9 where masked; row multiplier [B, 1, T, 1], 0 for the rows whose keys are
    all masked, the padded query positions, which softmax would make uniform and Keras zeroes).
    Keras instead selects twice over the full [B, N, T, S] scores."""
    mask = tf.convert_to_tensor(attention_mask)
    if mask.dtype != tf.bool:
        mask = mask > tf.cast(0.5, mask.dtype)
    while len(mask.shape) < rank:
        mask = tf.expand_dims(mask, axis=-3)  # the heads axis, as Keras expands it
    bias = tf.where(mask, tf.zeros([], dtype), tf.constant(_large_negative(dtype), dtype))
    return bias, tf.cast(tf.reduce_any(mask, axis=-1, keepdims=True), dtype)


def _large_negative(dtype) -> float:
    """Keras' masked value: -1e9, or -3e4 where float16 cannot hold it."""
    return -3e4 if dtype == tf.float16 else -1e9


def _supports(layer) -> bool:
    axes = keras_internals.attention_axes(layer)
    return not keras_internals.flash_attention(layer) and (axes is None or tuple(axes) == (1,))


def _fast_compute_attention(self, query, key, value, attention_mask=None, training=None,
                            return_attention_scores=False, use_causal_mask=False):
    if len(query.shape) != 4 or use_causal_mask or not _supports(self):
        return keras_internals.keras_compute_attention(self, query, key, value, attention_mask, training,
                                                       return_attention_scores, use_causal_mask)
    return head_major_attention(self, query, key, value, attention_mask, training,
                                return_scores=return_attention_scores)


def takes(layer) -> bool:
    """Whether `layer` gets the kernel: a keras.layers.MultiHeadAttention (subclasses
    included) over one sequence axis, without flash attention."""
    return isinstance(layer, keras.layers.MultiHeadAttention) and _supports(layer)


def install_on(layer) -> None:
    """Runs head_major_attention as `layer`'s attention core (Keras' own for causal masks and
    inputs other than 4-D projections)."""
    keras_internals.replace_compute_attention(layer, _fast_compute_attention)
