"""Multi-head attention computed head-major: transposes + batched matmuls instead of einsums.

keras.layers.MultiHeadAttention (and keras-hub's CachedMultiHeadAttention, which every
keras-hub transformer block uses) forms the attention scores with
einsum("aecd,abcd->acbe", key, query) on [batch, length, heads, head_dim] tensors. TensorFlow
lowers that to transposes around a batched matmul it cannot fuse well on CPU: for MiniLM
shapes (batch 32, 12 heads x 32, length 128, bfloat16) the scores einsum took 15.4 ms against
2.8 ms for the same product on head-major [batch, heads, length, head_dim] operands, and the
context einsum 6.5 ms against 3.4 ms (bench/README.md). `head_major_attention` transposes
query, key and value once, runs two tf.matmul calls and transposes the context back; the
scale and attention dropout are the layer's own. The mask becomes an additive bias of shape
[B, 1, T, S] (Keras selects twice over the full [B, N, T, S] scores: ~2.5 ms per select at
MiniLM shapes), applied with the scale as matmul * scale + bias, which Grappler's remapper
fuses into one oneDNN batched matmul on CPU; outputs equal Keras' up to float round-off.

`use_fast_attention(model)` installs it on every MultiHeadAttention inside a model whose
attention runs over one sequence axis (4-D projections); causal, flash and multi-axis
attention keep Keras' implementation. Weights and configs do not change.
"""

import types

import keras
import tensorflow as tf

_HEAD_MAJOR = [0, 2, 1, 3]  # [B, L, N, D] <-> [B, N, L, D]


def head_major_attention(layer, query, key, value, attention_mask=None, training=None,
                         return_scores=True):
    """MultiHeadAttention._compute_attention of `layer` on head-major matmuls.

    query [B, T, N, D], key [B, S, N, D], value [B, S, N, Dv] -> ([B, T, N, Dv], scores
    [B, N, T, S]), as Keras' implementation returns them. return_scores False: the scores
    of fully masked rows (padded queries, never read) are left uniform instead of zeroed.
    """
    scale = layer._inverse_sqrt_key_dim
    k = tf.transpose(key, _HEAD_MAJOR)
    v = tf.transpose(value, _HEAD_MAJOR)
    if attention_mask is None:
        q = tf.transpose(query * tf.cast(scale, query.dtype), _HEAD_MAJOR)
        scores, rows_kept = layer._softmax(tf.matmul(q, k, transpose_b=True)), None
    else:
        bias, rows_kept = _mask_bias(attention_mask, query.dtype, rank=len(query.shape))
        # BatchMatMul * scale + bias: the op pattern oneDNN runs as one fused batched matmul.
        logits = tf.add(tf.multiply(tf.matmul(tf.transpose(query, _HEAD_MAJOR), k, transpose_b=True),
                                    tf.constant(scale, query.dtype)), bias)
        scores = tf.nn.softmax(logits)
        if return_scores:
            scores, rows_kept = scores * rows_kept, None
    probs = layer._dropout_layer(scores, training=training) if layer._dropout > 0.0 else scores
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
    axes = layer._attention_axes
    return not layer._flash_attention and (axes is None or tuple(axes) == (1,))


def _fast_compute_attention(self, query, key, value, attention_mask=None, training=None,
                            return_attention_scores=False, use_causal_mask=False):
    if len(query.shape) != 4 or use_causal_mask or not _supports(self):
        return type(self)._compute_attention(self, query, key, value, attention_mask, training,
                                             return_attention_scores, use_causal_mask)
    return head_major_attention(self, query, key, value, attention_mask, training,
                                return_scores=return_attention_scores)


def use_fast_attention(model) -> int:
    """Installs head_major_attention on every keras.layers.MultiHeadAttention in `model`
    (subclasses included); returns how many layers got it."""
    switched = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.MultiHeadAttention) and _supports(layer):
            object.__setattr__(layer, "_compute_attention", types.MethodType(_fast_compute_attention, layer))
            switched += 1
    return switched
