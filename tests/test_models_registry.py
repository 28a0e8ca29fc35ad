"""Backbone registry (the one table of families) and precision policy helpers."""

import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest

from esci_tf import choices
from esci_tf.models import precision, registry
from esci_tf.models.bert.backbone import HFBertBackbone


def test_entries_and_lookups():
    assert set(registry.BACKBONES) == {"bert", "xlm_roberta", "deberta_v3", "rembert"}
    assert registry.get_entry("bert").uses_segment_ids
    assert not registry.get_entry("deberta_v3").uses_segment_ids
    assert registry.entry_for_model_type("deberta-v2").name == "deberta_v3"
    with pytest.raises(ValueError, match="unsupported Hugging Face model_type 'gpt2'"):
        registry.entry_for_model_type("gpt2")
    with pytest.raises(ValueError, match="unknown backbone 'roberta'"):
        registry.get_entry("roberta")
    # esci_tf.choices names the families (the flags' list); each folder's entry is that family's.
    assert registry.names() == choices.BACKBONE_NAMES
    assert all(entry.name == name for name, entry in registry.BACKBONES.items())


def test_entry_for_backbone_and_parts():
    bb = keras_hub.models.BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2,
                                       hidden_dim=8, intermediate_dim=16, max_sequence_length=8)
    entry = registry.entry_for_backbone(bb)
    assert entry.name == "bert"
    assert entry.word_embeddings(bb) is bb.token_embedding.embeddings
    assert len(entry.layer_outputs(bb)) == 2
    assert entry.pooler_layer(bb) is bb.get_layer("pooled_dense")


TINY = dict(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
            max_sequence_length=8)
EXTRA = {"deberta_v3": dict(bucket_size=4), "rembert": dict(input_embedding_dim=4)}


def test_family_table_is_the_one_source():
    from trainers.flags import fit_flags
    from esci_tf.preprocessing import BACKBONES as PREPROCESSING_BACKBONES

    assert registry.names() == ("bert", "xlm_roberta", "deberta_v3", "rembert")
    assert fit_flags.BACKBONES == PREPROCESSING_BACKBONES == registry.names()
    for name, entry in registry.BACKBONES.items():
        assert entry.name == name
        assert issubclass(entry.backbone_class, entry.preset_class)
        assert issubclass(entry.tokenizer_class, keras_hub.tokenizers.Tokenizer)
        assert callable(entry.convert.convert_backbone_config)
        assert callable(entry.convert.convert_weights)
        assert entry.hf_prefix.endswith(".") and entry.hf_vocab_file
        for model_type in entry.hf_model_types:
            assert registry.entry_for_model_type(model_type) is entry


@pytest.mark.parametrize("name", ["bert", "xlm_roberta", "deberta_v3", "rembert"])
def test_entry_for_backbone_and_parts_of_every_family(name):
    entry = registry.get_entry(name)
    bb = entry.backbone_class(**TINY, **EXTRA.get(name, {}))
    assert registry.entry_for_backbone(bb) is entry
    assert entry.word_embeddings(bb) is bb.token_embedding.embeddings
    assert len(entry.layer_outputs(bb)) == 2
    has_pooler = name in ("bert", "rembert")
    assert (entry.pooler_layer(bb) is bb.get_layer("pooled_dense")) if has_pooler else (
        entry.pooler_layer(bb) is None)


def test_rembert_backbone_module_is_imported_only_when_needed():
    code = ("import sys; import esci_tf.models, esci_tf.preprocessing; "
            "from esci_tf.models import registry; entry = registry.get_entry('rembert'); "
            "assert 'esci_tf.models.rembert.backbone' not in sys.modules, 'imported early'; "
            "entry.backbone_class; assert 'esci_tf.models.rembert.backbone' in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_exact_gelu_bert_differs_from_approximate_and_serialises():
    kwargs = dict(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8,
                  intermediate_dim=16, max_sequence_length=8)
    exact = HFBertBackbone(hidden_activation="gelu", **kwargs)
    approx = keras_hub.models.BertBackbone(**kwargs)
    rng = np.random.default_rng(0)
    exact.set_weights([rng.normal(size=w.shape).astype("float32") for w in exact.get_weights()])
    approx.set_weights(exact.get_weights())
    x = {"token_ids": np.arange(6, dtype="int32")[None] + 1,
         "segment_ids": np.zeros((1, 6), "int32"), "padding_mask": np.ones((1, 6), "int32")}
    a, b = exact(x)["sequence_output"].numpy(), approx(x)["sequence_output"].numpy()
    assert not np.array_equal(a, b)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(exact))
    clone.set_weights(exact.get_weights())
    np.testing.assert_array_equal(clone(x)["sequence_output"].numpy(), a)


def test_recommended_policy():
    assert precision.recommended_policy("TPU v5 lite") == "mixed_bfloat16"
    assert precision.recommended_policy("cpu", cpu_flags=("avx2", "amx_bf16")) == "mixed_bfloat16"
    assert precision.recommended_policy("cpu", cpu_flags=("avx2",)) == "float32"
    assert precision.recommended_policy() in precision.POLICIES
    with pytest.raises(ValueError, match="unknown device kind 'npu'"):
        precision.recommended_policy("npu")


def test_set_precision_policy():
    previous = keras.mixed_precision.dtype_policy()
    try:
        assert precision.set_precision_policy("mixed_bfloat16") == "mixed_bfloat16"
        assert keras.mixed_precision.dtype_policy().name == "mixed_bfloat16"
        assert precision.set_precision_policy("auto") in precision.POLICIES
        with pytest.raises(ValueError, match="unknown dtype policy 'fp8'"):
            precision.set_precision_policy("fp8")
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
