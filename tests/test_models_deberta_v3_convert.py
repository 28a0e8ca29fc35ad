"""The deberta_v3 family's converter (through load_hf_backbone): parity with transformers'
DebertaV2Model (v3 layout) and clear errors."""

import json
import os

import keras
import keras_hub
import numpy as np
import pytest

from esci_tf.errors import DataError
from esci_tf.models import load_hf_backbone
from tests import hf_fixtures

LENGTH = 20
TOKEN_IDS = np.random.RandomState(0).randint(3, 128, size=(2, LENGTH)).astype("int32")
TOKEN_IDS[1, 11:] = 0  # second row padded
PADDING_MASK = (TOKEN_IDS != 0).astype("int32")
INPUTS = {"token_ids": TOKEN_IDS, "padding_mask": PADDING_MASK}
REAL = PADDING_MASK.astype(bool)  # transformers zeroes padded positions; compare real ones


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """mDeBERTa-v3 layout: 256 position buckets, max 512 positions."""
    directory = str(tmp_path_factory.mktemp("deberta_v3"))
    hf_fixtures.write_tiny_checkpoint("deberta-v2", directory, seed=2)
    return directory


@pytest.fixture(scope="module")
def reference(checkpoint):
    return hf_fixtures.reference_hidden_states(checkpoint, TOKEN_IDS, PADDING_MASK)


def _hidden_states(backbone):
    """Embedding output and every layer's output, as transformers' hidden_states."""
    names = ["embeddings_layer_norm"] + [
        f"disentangled_attention_encoder_layer_{i}" for i in range(backbone.num_layers)]
    model = keras.Model(backbone.inputs, [backbone.get_layer(n).output for n in names])
    return [x.numpy() for x in model(INPUTS)]


def test_parity_with_transformers_every_layer_with_padding(checkpoint, reference):
    backbone = load_hf_backbone(checkpoint)
    assert isinstance(backbone, keras_hub.models.DebertaV3Backbone)
    assert backbone.bucket_size == 256 and backbone.max_sequence_length == 512
    np.testing.assert_allclose(backbone(INPUTS).numpy()[REAL], reference[-1][REAL], atol=1e-4)
    hidden_states = _hidden_states(backbone)
    assert len(hidden_states) == len(reference) == 3
    for ours, theirs in zip(hidden_states, reference):
        np.testing.assert_allclose(ours[REAL], theirs[REAL], atol=1e-4)


def test_parity_with_log_bucketed_relative_positions(tmp_path):
    # 8 buckets over 20 positions: distances beyond 4 go through the log buckets.
    directory = str(tmp_path)
    hf_fixtures.write_tiny_checkpoint("deberta-v2", directory, seed=3, position_buckets=8,
                                      max_position_embeddings=LENGTH)
    expected = hf_fixtures.reference_hidden_states(directory, TOKEN_IDS, PADDING_MASK)[-1]
    actual = load_hf_backbone(directory)(INPUTS).numpy()
    np.testing.assert_allclose(actual[REAL], expected[REAL], atol=1e-4)


def test_prefixed_keys_and_head_weights_load(checkpoint, reference, tmp_path):
    tensors = {f"deberta.{k}": v for k, v in hf_fixtures.read_weights(checkpoint).items()}
    tensors["lm_predictions.lm_head.bias"] = np.zeros([128], "float32")
    directory = hf_fixtures.write_variant(checkpoint, str(tmp_path), tensors)
    actual = load_hf_backbone(directory, dropout=0.0)(INPUTS).numpy()
    np.testing.assert_allclose(actual[REAL], reference[-1][REAL], atol=1e-4)


def test_missing_unexpected_and_misshaped_weights_are_all_named(checkpoint, tmp_path):
    tensors = hf_fixtures.read_weights(checkpoint)
    del tensors["encoder.rel_embeddings.weight"]
    tensors["encoder.layer.0.attention.self.pos_key_proj.weight"] = np.zeros([32, 32], "float32")
    tensors["encoder.layer.1.attention.self.query_proj.bias"] = np.zeros([16], "float32")
    directory = hf_fixtures.write_variant(checkpoint, str(tmp_path), tensors)
    with pytest.raises(DataError) as error:
        load_hf_backbone(directory)
    message = str(error.value)
    assert os.path.join(directory, "model.safetensors") in message
    assert "missing keys (1): encoder.rel_embeddings.weight" in message
    assert "unexpected keys (1): encoder.layer.0.attention.self.pos_key_proj.weight" in message
    assert ("encoder.layer.1.attention.self.query_proj.bias: checkpoint shape (16,), "
            "expected (32,)") in message


def test_config_keras_hub_cannot_represent_is_refused_with_every_reason(checkpoint, tmp_path):
    tensors = hf_fixtures.read_weights(checkpoint)
    directory = hf_fixtures.write_variant(checkpoint, str(tmp_path), tensors)
    config = hf_fixtures.read_config(directory)
    config.update(share_att_key=False, pos_att_type=["c2p"], position_biased_input=True,
                  type_vocab_size=2, layer_norm_eps=1e-12)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    with pytest.raises(DataError, match="config.json: config not representable") as error:
        load_hf_backbone(directory)
    message = str(error.value)
    for reason in ("share_att_key", "pos_att_type ['c2p']", "position_biased_input",
                   "type_vocab_size 2", "layer_norm_eps 1e-12"):
        assert reason in message


def test_real_mdeberta_v3_base_config_is_representable():
    """microsoft/mdeberta-v3-base's config.json (pos_att_type as the "p2c|c2p" string)."""
    from esci_tf.models.deberta_v3.convert import convert_backbone_config

    mdeberta_v3_base = {
        "model_type": "deberta-v2", "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
        "intermediate_size": 3072, "max_position_embeddings": 512, "relative_attention": True,
        "position_buckets": 256, "norm_rel_ebd": "layer_norm", "share_att_key": True,
        "pos_att_type": "p2c|c2p", "layer_norm_eps": 1e-7, "max_relative_positions": -1,
        "position_biased_input": False, "num_attention_heads": 12, "num_hidden_layers": 12,
        "type_vocab_size": 0, "vocab_size": 251000,
    }
    assert convert_backbone_config(mdeberta_v3_base) == dict(
        vocabulary_size=251000, num_layers=12, num_heads=12, hidden_dim=768,
        intermediate_dim=3072, dropout=0.1, max_sequence_length=512, bucket_size=256)
