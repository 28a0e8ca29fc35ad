"""kernels.install: one walk over a model puts each named kernel on every layer that takes it;
CrossEncoder's `kernels` setting, its errors, and configs saved with the older fast_* booleans."""

import json
import zipfile

import keras
import numpy as np
import pytest

from esci_tf.models import CrossEncoder, build_cross_encoder
from esci_tf.models.kernels import KERNELS, check_kernels, install, keras_internals
from esci_tf.models.kernels.dropout import FastDropout
from esci_tf.models.kernels.gelu import gelu_erf
from tests.model_fixtures import TINY_BERT, tiny_bert_batch

TINY = dict(TINY_BERT, hidden_activation="gelu")  # exact GELU, as in MiniLM
N = TINY["num_layers"]


def _keras_only(**kwargs):
    return build_cross_encoder("bert", backbone_config=TINY, kernels=(), **kwargs)


def _installed(model) -> dict:
    """How many layers of `model` carry each kernel."""
    layers = keras_internals.all_layers(model)
    return {
        "dropout": sum(type(l) is FastDropout for l in layers),
        "gelu": sum(getattr(l, "activation", None) is gelu_erf for l in layers),
        "attention": sum(keras_internals.overrides(l, "_compute_attention") for l in layers),
        "dense": sum(isinstance(l, (keras.layers.Dense, keras.layers.EinsumDense))
                     and keras_internals.overrides(l, "call") for l in layers),
        "layer_norm": sum(isinstance(l, keras.layers.LayerNormalization)
                          and keras_internals.overrides(l, "call") for l in layers),
    }


def test_install_counts_every_kernel_in_one_walk():
    model = _keras_only()
    assert model.kernels == () and set(_installed(model).values()) == {0}
    counts = install(model)
    assert list(counts) == list(KERNELS)
    # per block: attention probabilities, attention output, feed-forward output; + embeddings, head
    assert counts["dropout"] == 3 * N + 2
    assert counts["gelu"] == N
    assert counts["attention"] == N
    # per block: q, k, v, attention output, 2 feed-forward; + the pooler and the head
    assert counts["dense"] == 6 * N + 2
    assert counts["layer_norm"] == 2 * N + 1  # two per block + the embeddings'
    assert _installed(model) == counts
    assert _installed(build_cross_encoder("bert", backbone_config=TINY)) == counts


def test_install_a_subset_leaves_the_other_layers_alone():
    model = _keras_only(cross_attention=True)
    counts = install(model, ["layer_norm", "attention"])
    assert counts == {"attention": N + 2, "layer_norm": 2 * N + 1}  # + the cross attention's two
    assert _installed(model) == dict(dropout=0, gelu=0, dense=0, **counts)
    assert install(model, ()) == {}


def test_one_walk_equals_one_walk_per_kernel():
    """Installing all kernels at once gives bit-identical outputs to one kernel at a time in
    KERNELS order (what five separate walks did)."""
    together = build_cross_encoder("bert", backbone_config=TINY, cross_attention=True)
    separate = _keras_only(cross_attention=True)
    separate.set_weights(together.get_weights())
    for name in KERNELS:
        install(separate, [name])
    assert _installed(separate) == _installed(together)
    batch = tiny_bert_batch()
    np.testing.assert_array_equal(separate(batch, training=False), together(batch, training=False))


def test_kernel_names_are_checked():
    assert check_kernels(["layer_norm", "dropout"]) == ("dropout", "layer_norm")  # KERNELS order
    assert check_kernels(()) == ()
    for bad in (["dense", "flash"], ["fast_dense"], "dense", ["gelu", "gelu"], None):
        with pytest.raises(ValueError, match="dropout.*gelu.*attention.*dense.*layer_norm"):
            check_kernels(bad)
    with pytest.raises(ValueError, match=r"unknown kernel name\(s\) \['flash'\]; valid ones"):
        install(keras.layers.Dense(2), ["flash"])
    with pytest.raises(ValueError, match="valid ones"):
        build_cross_encoder("bert", backbone_config=TINY, kernels=("fast_dense",))


def test_cross_encoder_keeps_its_kernels_in_the_config(tmp_path):
    model = build_cross_encoder("bert", backbone_config=TINY, kernels=["layer_norm", "dropout"])
    assert model.kernels == ("dropout", "layer_norm")
    assert model.get_config()["kernels"] == ["dropout", "layer_norm"]
    assert not any(k.startswith("fast_") for k in model.get_config())
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.kernels == ("dropout", "layer_norm") and _installed(loaded) == _installed(model)


def _legacy(config, **switches):
    """`config` as a CrossEncoder saved before `kernels` wrote it: five fast_* booleans."""
    config = dict(config)
    kernels = config.pop("kernels")
    config.update({f"fast_{name}": name in kernels for name in KERNELS}, **switches)
    return config


def test_legacy_fast_switches_in_a_config_load_as_kernels():
    config = build_cross_encoder("bert", backbone_config=TINY).get_config()
    loaded = CrossEncoder.from_config(_legacy(config, fast_dense=False, fast_gelu=False))
    assert loaded.kernels == ("dropout", "attention", "layer_norm")
    assert "fast_dense" not in loaded.get_config() and loaded.get_config()["kernels"] == list(loaded.kernels)
    assert _installed(loaded)["dense"] == 0 and _installed(loaded)["gelu"] == 0
    # Configs from before a switch existed lack it: it was on by default.
    older = _legacy(config)
    del older["fast_layer_norm"]
    assert CrossEncoder.from_config(older).kernels == KERNELS
    with pytest.raises(ValueError, match="both kernels"):
        CrossEncoder.from_config(dict(_legacy(config), kernels=list(KERNELS)))


def test_legacy_keras_file_loads_with_the_same_kernels_and_outputs(tmp_path):
    """A .keras file whose config.json carries the five fast_* booleans (as saved before this
    change) loads, with the kernels those booleans named and the saved weights."""
    model = build_cross_encoder("bert", backbone_config=TINY, kernels=("dropout", "gelu", "attention", "dense"))
    path, legacy_path = tmp_path / "model.keras", tmp_path / "legacy.keras"
    model.save(path)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(legacy_path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                saved = json.loads(data)
                saved["config"] = _legacy(saved["config"])
                assert saved["config"]["fast_layer_norm"] is False
                data = json.dumps(saved).encode()
            target.writestr(item, data)
    loaded = keras.saving.load_model(legacy_path)
    assert loaded.kernels == ("dropout", "gelu", "attention", "dense")
    assert _installed(loaded) == _installed(model)
    batch = tiny_bert_batch()
    np.testing.assert_array_equal(loaded(batch), model(batch))
