"""keras_internals: every private Keras name the kernels rely on still exists, with the kind and
signature they expect, on real layers (a Keras or keras-hub upgrade that changes one fails here,
naming the version and the attribute), and no other kernel module touches private Keras state."""

import inspect
import math
import pathlib
import re

import keras
import keras_hub
import numpy as np
import pytest

from esci_tf.models.kernels import keras_internals
from esci_tf.models.kernels.dropout import FastDropout
from tests.model_fixtures import TINY_BERT

VERSIONS = f"Keras {keras.__version__}, keras-hub {keras_hub.__version__}"
KERNELS_DIR = pathlib.Path(keras_internals.__file__).parent
X = np.random.default_rng(0).normal(size=(2, 3, 6)).astype("float32")


@pytest.fixture(scope="module")
def real_layers():
    """{Keras class name in REQUIREMENTS: built instances of it}."""
    dense = keras.layers.Dense(4)
    einsum = keras.layers.EinsumDense("abc,cde->abde", (None, 2, 2), bias_axes="de")
    attention = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.1)
    cached = keras_hub.layers.CachedMultiHeadAttention(num_heads=2, key_dim=4)
    layer_norm = keras.layers.LayerNormalization()
    dropout = keras.layers.Dropout(0.1)
    for layer in (dense, einsum, layer_norm, dropout):
        layer(X)
    attention(X, X)
    cached(X, X)
    bert = keras_hub.models.BertBackbone(**TINY_BERT)
    bert_attention = [l for l in keras_internals.all_layers(bert) if isinstance(l, keras.layers.MultiHeadAttention)]
    assert len(bert_attention) == TINY_BERT["num_layers"], (
        f"{VERSIONS}: Layer._flatten_layers no longer reaches the attention inside BertBackbone's blocks")
    return {"Layer": [dense, bert], "MultiHeadAttention": [attention, cached, *bert_attention],
            "Dense": [dense], "EinsumDense": [einsum], "LayerNormalization": [layer_norm], "Dropout": [dropout],
            "bert": bert}


def _check_kind(layer, attribute, kind, parameters):
    where = f"{VERSIONS}: {type(layer).__name__}.{attribute}"
    assert hasattr(layer, attribute), f"{where} is gone; esci_tf/models/kernels/keras_internals.py relies on it"
    value = getattr(layer, attribute)
    if kind == "method":
        function = getattr(type(layer), attribute)
        assert callable(function), f"{where} is no longer a method"
        names = list(inspect.signature(function).parameters)[1:]
        assert names[:len(parameters)] == list(parameters), (
            f"{where} now takes {names}; keras_internals expects {list(parameters)} first")
    elif kind == "number":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where} = {value!r}, not a number"
    elif kind == "flag":
        assert value is None or isinstance(value, bool), f"{where} = {value!r}, not True, False or None"
    elif kind == "axes":
        assert value is None or (isinstance(value, tuple) and all(isinstance(a, int) for a in value)), (
            f"{where} = {value!r}, not None or a tuple of axes")
    elif kind != "attribute":
        assert isinstance(value, getattr(keras.layers, kind)), f"{where} is a {type(value).__name__}, not a {kind}"


@pytest.mark.parametrize("requirement", keras_internals.REQUIREMENTS, ids=lambda r: f"{r[0]}.{r[1]}")
def test_relied_on_attribute_exists_with_its_kind(requirement, real_layers):
    cls, attribute, kind, parameters = requirement
    assert real_layers[cls], cls
    for layer in real_layers[cls]:
        _check_kind(layer, attribute, kind, parameters)


def test_every_private_name_used_is_listed():
    """A private name read in keras_internals (layer._x / model._x, or given to replace_method)
    must be in REQUIREMENTS, so the test above covers it."""
    source = (KERNELS_DIR / "keras_internals.py").read_text()
    used = set(re.findall(r"\b(?:layer|model)\.(_[a-z]\w*)", source))
    used |= set(re.findall(r"replace_method\(layer, \"(_[a-z]\w*)\"", source))
    listed = {attribute for _, attribute, _, _ in keras_internals.REQUIREMENTS}
    assert used and used <= listed, f"not in REQUIREMENTS: {sorted(used - listed)}"


# On an object (`layer._softmax`, `type(layer)._compute_attention`), not a class named in a docstring.
PRIVATE_ACCESS = re.compile(
    r"_flatten_layers|object\.__setattr__|__class__\s*=|types\.MethodType|\.__dict__|"
    r"(?:\b[a-z_]\w*|\))\.(?:"
    + "|".join(re.escape(a) for _, a, _, _ in keras_internals.REQUIREMENTS if a.startswith("_")) + r")\b")


def test_no_other_module_touches_private_keras_state():
    others = sorted(p for p in KERNELS_DIR.glob("*.py") if p.name != "keras_internals.py")
    others.append(KERNELS_DIR.parent / "cross_encoder.py")
    hits = [f"{p.name}:{n}: {line.strip()}" for p in others
            for n, line in enumerate(p.read_text().splitlines(), 1) if PRIVATE_ACCESS.search(line)]
    assert not hits, "private Keras access outside keras_internals.py:\n" + "\n".join(hits)


@pytest.mark.parametrize("make,rank", [
    (lambda: keras.layers.Dense(4), 3),
    (lambda: keras.layers.EinsumDense("abc,cde->abde", (None, 2, 2), bias_axes="de"), 3),
    (lambda: keras.layers.LayerNormalization(), 3),
])
def test_a_replaced_call_is_what_the_layer_runs(make, rank):
    layer, other = make(), make()
    layer(X)
    other(X)
    calls = []

    def recording(self, inputs, *args, **kwargs):
        calls.append(self)
        return keras_internals.keras_call(self, inputs, *args, **kwargs)

    expected = np.asarray(layer(X))
    keras_internals.replace_call(layer, recording)
    assert keras_internals.overrides(layer, "call") and not keras_internals.overrides(other, "call")
    np.testing.assert_array_equal(layer(X), expected)
    assert calls == [layer], f"{VERSIONS}: Layer.__call__ no longer runs an instance's own `call`"
    other(X)
    assert len(calls) == 1


def test_a_replaced_attention_core_runs_in_every_multi_head_attention(real_layers):
    """keras' MultiHeadAttention.call passes the core its arguments by position, keras-hub's
    CachedMultiHeadAttention by name: a replacement with Keras' signature serves both."""
    calls = []

    def recording(self, query, key, value, attention_mask=None, training=None,
                  return_attention_scores=False, use_causal_mask=False):
        calls.append(self)
        return keras_internals.keras_compute_attention(self, query, key, value, attention_mask, training,
                                                       return_attention_scores, use_causal_mask)

    plain, cached, *in_bert = real_layers["MultiHeadAttention"]
    for layer in (plain, cached, *in_bert):
        keras_internals.replace_compute_attention(layer, recording)
        assert keras_internals.overrides(layer, "_compute_attention")
    plain(X, X, attention_mask=np.ones((2, 3, 3), bool))
    cached(X, X)
    real_layers["bert"]({"token_ids": np.ones((2, 5), "int32"), "segment_ids": np.zeros((2, 5), "int32"),
                         "padding_mask": np.ones((2, 5), "int32")})
    assert calls == [plain, cached, *in_bert], (
        f"{VERSIONS}: MultiHeadAttention.call no longer runs the instance's `_compute_attention`")


def test_attention_accessors_read_the_layers_own_values():
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.25)
    layer(X, X)
    assert keras_internals.attention_scale(layer) == pytest.approx(1 / math.sqrt(4))
    assert keras_internals.attention_dropout_rate(layer) == 0.25
    assert tuple(keras_internals.attention_axes(layer)) == (1,)
    assert not keras_internals.flash_attention(layer)
    scores = np.random.default_rng(1).normal(size=(2, 2, 3, 3)).astype("float32")
    np.testing.assert_allclose(keras_internals.attention_softmax(layer, scores),
                               keras.ops.softmax(scores, axis=-1), atol=1e-6)
    np.testing.assert_array_equal(keras_internals.attention_dropout(layer, scores, training=False), scores)


def test_switch_class_keeps_the_dropout_state():
    layer = keras.layers.Dropout(0.3, noise_shape=(None, 1, 6), seed=3)
    config, seed_generator = layer.get_config(), layer.seed_generator
    keras_internals.switch_class(layer, FastDropout)
    assert type(layer) is FastDropout
    assert layer.seed_generator is seed_generator and layer.get_config() == config
    out = np.asarray(layer(np.ones((4, 5, 6), "float32"), training=True))
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1, :], out.shape))


def test_untracked_attributes_are_not_tracked():
    layer = keras.layers.Dense(2)
    layer(X)
    keras_internals.set_untracked(layer, "_esci_plan", ["a", "b"])
    assert type(layer._esci_plan) is list and len(layer.weights) == 2
