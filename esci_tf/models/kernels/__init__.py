"""esci-tf's own kernels for Keras layers, installed in place on a built model.

Each kernel computes what a Keras layer computes, in a form TensorFlow runs faster on CPU
(bench/README.md has the measurements):

* "dropout" (dropout.py): FastDropout, the same distribution from 16-bit random draws.
* "gelu" (gelu.py): the exact GELU computed in float32, with a fused gradient.
* "attention" (attention.py): MultiHeadAttention's scores and context as head-major batched
  matmuls, the mask as one additive bias.
* "dense" (dense.py): Dense / EinsumDense projections as one 2-D MatMul + BiasAdd (+ GELU)
  that oneDNN fuses.
* "layer_norm" (layer_norm.py): last-axis layer normalization in fewer float32 passes, with a
  fused gradient.

`install(model, kernels)` walks the model's layers once (nested keras-hub blocks included) and
puts each named kernel on every layer that takes it; weights, variables and saved configs do
not change, so CrossEncoder installs them again when it is rebuilt from its config. Every
access to private Keras state is in keras_internals.py.

>>> import keras
>>> block = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="gelu"),
...                           keras.layers.Dropout(0.1), keras.layers.LayerNormalization()])
>>> install(block)
{'dropout': 1, 'gelu': 1, 'attention': 0, 'dense': 1, 'layer_norm': 1}
"""

from esci_tf.models.kernels import attention, dense, dropout, gelu, keras_internals, layer_norm

# The default set, in install order (on a layer that takes two, e.g. a GELU Dense, they are
# installed in this order).
KERNELS = ("dropout", "gelu", "attention", "dense", "layer_norm")
_MODULES = {"dropout": dropout, "gelu": gelu, "attention": attention, "dense": dense,
            "layer_norm": layer_norm}


def check_kernels(kernels) -> tuple:
    """The kernel names of `kernels` (a list or tuple; () = none, Keras' own kernels) in
    KERNELS order; ValueError naming the valid ones for an unknown or repeated name."""
    if isinstance(kernels, str) or not isinstance(kernels, (list, tuple)):
        raise ValueError(f"kernels must be a list or tuple of names from {KERNELS}, got {kernels!r}")
    unknown = [name for name in kernels if name not in _MODULES]
    if unknown:
        raise ValueError(f"unknown kernel name(s) {unknown}; valid ones: {KERNELS}")
    if len(set(kernels)) != len(kernels):
        raise ValueError(f"kernels {list(kernels)} repeat a name; valid ones: {KERNELS}")
    return tuple(name for name in KERNELS if name in kernels)


def install(model, kernels=KERNELS) -> dict:
    """Puts each of `kernels` (names from KERNELS) on every layer of `model` (itself and every
    nested layer) that takes it, in one walk; returns {name: how many layers got it}."""
    names = check_kernels(kernels)
    chosen = [(name, _MODULES[name]) for name in names]
    counts = dict.fromkeys(names, 0)
    for layer in keras_internals.all_layers(model):
        for name, module in chosen:
            if module.takes(layer):
                module.install_on(layer)
                counts[name] += 1
    return counts
