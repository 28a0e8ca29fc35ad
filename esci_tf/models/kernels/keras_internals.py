"""Every access the kernels make to private Keras state, in one module.

The kernels change layers in place, below Keras' public API: they walk a model's nested layers
(Layer._flatten_layers), bind a replacement `call` or `_compute_attention` to one layer
instance (object.__setattr__, past Keras' attribute tracking), switch a Dropout's class, and
read MultiHeadAttention's private scale, softmax, dropout and attention-axes attributes. All of
that is here and nowhere else, so a Keras or keras-hub upgrade that renames one of them breaks
one module; REQUIREMENTS lists each name with what it is expected to be, and
tests/test_models_kernels_keras_internals.py checks them on real layers (keras-hub's
CachedMultiHeadAttention included).

>>> import keras
>>> layer = keras.layers.Dense(2)
>>> [type(l).__name__ for l in all_layers(layer)]
['Dense']
>>> overrides(layer, "call")
False
"""

import types

# (Keras class, attribute, kind, leading parameters after self for methods) for every private
# Keras name used below, and the public ones read with a default (a rename would go silent).
# kind: "method", "number", "flag" (bool or None), "axes" (None or a tuple of ints),
# "attribute" (present), or a keras.layers class name the value must be an instance of.
REQUIREMENTS = (
    ("Layer", "_flatten_layers", "method", ("include_self", "recursive")),
    ("MultiHeadAttention", "_compute_attention", "method",
     ("query", "key", "value", "attention_mask", "training", "return_attention_scores", "use_causal_mask")),
    ("MultiHeadAttention", "_inverse_sqrt_key_dim", "number", ()),
    ("MultiHeadAttention", "_softmax", "Softmax", ()),
    ("MultiHeadAttention", "_dropout_layer", "Dropout", ()),
    ("MultiHeadAttention", "_dropout", "number", ()),
    ("MultiHeadAttention", "_attention_axes", "axes", ()),
    ("MultiHeadAttention", "_flash_attention", "flag", ()),
    ("Dense", "call", "method", ("inputs", "training")),
    ("Dense", "lora_enabled", "flag", ()),
    ("Dense", "quantization_mode", "attribute", ()),
    ("EinsumDense", "call", "method", ("inputs", "training")),
    ("EinsumDense", "lora_enabled", "flag", ()),
    ("EinsumDense", "quantization_mode", "attribute", ()),
    ("LayerNormalization", "call", "method", ("inputs",)),
    ("Dropout", "call", "method", ("inputs", "training")),
)


# ---------------------------------------------------------------------------------------------
# Any layer
# ---------------------------------------------------------------------------------------------

def all_layers(model) -> list:
    """`model` and every layer nested inside it (keras-hub blocks' sublayers included), as Keras
    tracks them, in Keras' order."""
    return list(model._flatten_layers(include_self=True, recursive=True))


def replace_method(layer, name: str, function) -> None:
    """Binds function(layer, ...) as `layer.<name>` on this instance only, past Keras'
    attribute tracking; the class and every other instance keep theirs."""
    object.__setattr__(layer, name, types.MethodType(function, layer))


def replace_call(layer, function) -> None:
    """Runs function(layer, inputs, ...) instead of the class's call for this layer."""
    replace_method(layer, "call", function)


def set_untracked(layer, name: str, value) -> None:
    """Sets `layer.<name>` without Keras tracking it (not a weight, not a sublayer, not saved)."""
    object.__setattr__(layer, name, value)


def overrides(layer, name: str) -> bool:
    """Whether `layer.<name>` was replaced on this instance (replace_method), not the class's."""
    return name in vars(layer)


def keras_call(layer, *args, **kwargs):
    """The layer class's own call (what runs without a replacement)."""
    return type(layer).call(layer, *args, **kwargs)


def switch_class(layer, cls) -> None:
    """Makes `layer` an instance of `cls` in place (a subclass of its class that adds no state:
    weights, config and seed state stay)."""
    layer.__class__ = cls


# ---------------------------------------------------------------------------------------------
# keras.layers.MultiHeadAttention (and keras-hub's CachedMultiHeadAttention)
# ---------------------------------------------------------------------------------------------

def replace_compute_attention(layer, function) -> None:
    """Runs function(layer, query, key, value, attention_mask, training,
    return_attention_scores, use_causal_mask) as this layer's attention core (projections
    and the output projection stay Keras')."""
    replace_method(layer, "_compute_attention", function)


def keras_compute_attention(layer, query, key, value, attention_mask, training,
                            return_attention_scores, use_causal_mask):
    """The layer class's own attention core."""
    return type(layer)._compute_attention(layer, query, key, value, attention_mask, training,
                                          return_attention_scores, use_causal_mask)


def attention_scale(layer) -> float:
    """1 / sqrt(key_dim), the scale Keras applies to the query."""
    return layer._inverse_sqrt_key_dim


def attention_softmax(layer, scores):
    """The layer's (unmasked) softmax over the key axis."""
    return layer._softmax(scores)


def attention_dropout_rate(layer) -> float:
    """The layer's attention-probability dropout rate."""
    return layer._dropout


def attention_dropout(layer, probabilities, training):
    """The layer's attention-probability dropout applied to `probabilities`."""
    return layer._dropout_layer(probabilities, training=training)


def attention_axes(layer):
    """The axes attention runs over (None before the layer is built: one axis)."""
    return layer._attention_axes


def flash_attention(layer):
    """Whether the layer runs flash attention (True, False or None: Keras' default)."""
    return layer._flash_attention
