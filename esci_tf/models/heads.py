"""Heads on top of a backbone: weighted layer pooling, multi-sample dropout, query cross
attention. Each is a serialisable Keras layer.

Example:
>>> import numpy as np
>>> layers = [np.random.rand(2, 5, 8).astype("float32") for _ in range(3)]
>>> WeightedLayerPooling(num_layers=3)(layers).shape
TensorShape([2, 8])
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="esci_tf")
class WeightedLayerPooling(keras.layers.Layer):
    """[CLS] vector as a learned softmax-weighted mix over the last N transformer layers.

    Called on a list of N tensors [B, L, D] (first to last layer) it returns [B, D]. The
    logits of the mixing weights start at 0 (an even mix).
    """

    def __init__(self, num_layers: int, token_index: int = 0, **kwargs):
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.num_layers = num_layers
        self.token_index = token_index

    def build(self, input_shape):
        self.layer_logits = self.add_weight(
            name="layer_logits", shape=(self.num_layers,), initializer="zeros",
            dtype="float32",
        )

    def call(self, layer_outputs):
        if len(layer_outputs) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layer outputs, got {len(layer_outputs)}")
        cls_vectors = ops.stack([x[:, self.token_index, :] for x in layer_outputs], axis=1)
        weights = ops.cast(ops.softmax(self.layer_logits), cls_vectors.dtype)
        return ops.einsum("bnd,n->bd", cls_vectors, weights)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][2])

    def get_config(self):
        config = super().get_config()
        config.update({"num_layers": self.num_layers, "token_index": self.token_index})
        return config


@keras.saving.register_keras_serializable(package="esci_tf")
class MultiSampleDropout(keras.layers.Layer):
    """Classifier under K dropout masks (one rate each): mean of the K logits in training,
    one pass without dropout at inference. Logits are float32 whatever the layer policy.

    >>> import numpy as np
    >>> head = MultiSampleDropout(num_classes=4, rates=(0.1, 0.3, 0.5))
    >>> head(np.ones((2, 8), "float32"), training=True).shape
    TensorShape([2, 4])
    """

    def __init__(self, num_classes: int, rates=(0.1,), kernel_initializer="glorot_uniform",
                 **kwargs):
        super().__init__(**kwargs)
        rates = tuple(float(r) for r in rates)
        if not rates or any(not 0.0 <= r < 1.0 for r in rates):
            raise ValueError(f"rates must be a non-empty list of values in [0, 1), got {rates}")
        self.num_classes = num_classes
        self.rates = rates
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.dropouts = [
            keras.layers.Dropout(rate, dtype=self.dtype_policy, name=f"dropout_{i}")
            for i, rate in enumerate(rates)
        ]
        self.classifier = keras.layers.Dense(
            num_classes, kernel_initializer=self.kernel_initializer, dtype="float32",
            name="classifier",
        )

    def build(self, input_shape):
        self.classifier.build(input_shape)

    def call(self, x, training=None):
        if not training:
            return self.classifier(x)
        logits = [self.classifier(dropout(x, training=True)) for dropout in self.dropouts]
        return ops.mean(ops.stack(logits, axis=0), axis=0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_classes,)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes,
            "rates": list(self.rates),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        })
        return config


def masked_mean(values, mask):
    """float32 mean of values [B, L, D] over positions where mask [B, L] is true (0 if none)."""
    values = ops.cast(values, "float32")
    weights = ops.cast(mask, "float32")[:, :, None]
    total = ops.sum(values * weights, axis=1)
    return total / ops.maximum(ops.sum(weights, axis=1), 1.0)


@keras.saving.register_keras_serializable(package="esci_tf")
class QueryCrossAttention(keras.layers.Layer):
    """Attention-over-attention style interaction of the query with the product.

    The query tokens (segment A without [CLS]) attend (a) over the product tokens and (b) over
    the whole (unpadded) sequence; each result is mean-pooled over the query tokens, and the
    two are concatenated and projected to the hidden size (tanh). Called as
    `layer(sequence, query_mask, product_mask, padding_mask)` with sequence [B, L, D] and
    masks [B, L]; returns [B, D].

    >>> import numpy as np
    >>> seq = np.random.rand(2, 6, 8).astype("float32")
    >>> q = np.array([[0, 1, 1, 0, 0, 0]] * 2, bool); p = np.array([[0, 0, 0, 1, 1, 0]] * 2, bool)
    >>> QueryCrossAttention(num_heads=2)(seq, q, p, np.ones((2, 6), bool)).shape
    TensorShape([2, 8])
    """

    def __init__(self, num_heads: int = 4, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.dropout = dropout

    def build(self, sequence_shape, query_mask_shape=None, product_mask_shape=None,
              padding_mask_shape=None):
        hidden = sequence_shape[-1]
        if hidden % self.num_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by num_heads {self.num_heads}")
        key_dim = hidden // self.num_heads
        self.to_product = keras.layers.MultiHeadAttention(
            self.num_heads, key_dim, dropout=self.dropout, dtype=self.dtype_policy,
            name="query_to_product",
        )
        self.to_sequence = keras.layers.MultiHeadAttention(
            self.num_heads, key_dim, dropout=self.dropout, dtype=self.dtype_policy,
            name="query_to_sequence",
        )
        self.projection = keras.layers.Dense(
            hidden, activation="tanh", dtype=self.dtype_policy, name="projection"
        )
        self.to_product.build(sequence_shape, sequence_shape)
        self.to_sequence.build(sequence_shape, sequence_shape)
        self.projection.build(tuple(sequence_shape[:1]) + (2 * hidden,))

    def call(self, sequence, query_mask, product_mask, padding_mask, training=None):
        query_mask = ops.cast(query_mask, "bool")
        product_mask = ops.cast(product_mask, "bool")
        visible = ops.cast(padding_mask, "bool")
        over_product = self.to_product(
            sequence, sequence,
            attention_mask=ops.logical_and(query_mask[:, :, None], product_mask[:, None, :]),
            training=training,
        )
        over_sequence = self.to_sequence(
            sequence, sequence,
            attention_mask=ops.logical_and(query_mask[:, :, None], visible[:, None, :]),
            training=training,
        )
        pooled = ops.concatenate(
            [masked_mean(over_product, query_mask), masked_mean(over_sequence, query_mask)],
            axis=-1,
        )
        return self.projection(pooled)

    def compute_output_shape(self, sequence_shape, query_mask_shape=None,
                             product_mask_shape=None, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "dropout": self.dropout})
        return config
