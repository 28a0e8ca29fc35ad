"""Multi-head attention computed head-major: transposes + batched matmuls instead of einsums.

keras.layers.MultiHeadAttention (and keras-hub's CachedMultiHeadAttention, which every
keras-hub transformer block uses) forms the attention scores with
einsum("aecd,abcd->acbe", key, query) on [batch, length, heads, head_dim] tensors. TensorFlow
lowers that to transposes around a batched matmul it cannot fuse well on CPU: for MiniLM
shapes (batch 32, 12 heads x 32, length 128, bfloat16) the scores einsum took 15.4 ms against
2.8 ms for the same product on head-major [batch, heads, length, head_dim] operands, and the
context einsum 6.5 ms against 3.4 ms (bench/README.md). `head_major_attention` transposes
query, key and value once, runs two tf.matmul calls and transposes the context back; the
scale, masked softmax and attention dropout are the layer's own, so outputs equal Keras' up to
float round-off.

`use_fast_attention(model)` installs it on every MultiHeadAttention inside a model whose
attention runs over one sequence axis (4-D projections); causal, flash and multi-axis
attention keep Keras' implementation. Weights and configs do not change.
"""

import types

import keras
import tensorflow as tf

_HEAD_MAJOR = [0, 2, 1, 3]  # [B, L, N, D] <-> [B, N, L, D]


def head_major_attention(layer, query, key, value, attention_mask=None, training=None):
    """MultiHeadAttention._compute_attention of `layer` on head-major matmuls.

    query [B, T, N, D], key [B, S, N, D], value [B, S, N, Dv] -> ([B, T, N, Dv], scores
    [B, N, T, S]), as Keras' implementation returns them.
    """
    q = tf.transpose(query * tf.cast(layer._inverse_sqrt_key_dim, query.dtype), _HEAD_MAJOR)
    k = tf.transpose(key, _HEAD_MAJOR)
    v = tf.transpose(value, _HEAD_MAJOR)
    scores = layer._masked_softmax(tf.matmul(q, k, transpose_b=True), attention_mask)
    probs = layer._dropout_layer(scores, training=training) if layer._dropout > 0.0 else scores
    return tf.transpose(tf.matmul(probs, v), _HEAD_MAJOR), scores


def _supports(layer) -> bool:
    axes = layer._attention_axes
    return not layer._flash_attention and (axes is None or tuple(axes) == (1,))


def _fast_compute_attention(self, query, key, value, attention_mask=None, training=None,
                            return_attention_scores=False, use_causal_mask=False):
    if len(query.shape) != 4 or use_causal_mask or not _supports(self):
        return type(self)._compute_attention(self, query, key, value, attention_mask, training,
                                             return_attention_scores, use_causal_mask)
    return head_major_attention(self, query, key, value, attention_mask, training)


def use_fast_attention(model) -> int:
    """Installs head_major_attention on every keras.layers.MultiHeadAttention in `model`
    (subclasses included); returns how many layers got it."""
    switched = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.MultiHeadAttention) and _supports(layer):
            object.__setattr__(layer, "_compute_attention", types.MethodType(_fast_compute_attention, layer))
            switched += 1
    return switched
