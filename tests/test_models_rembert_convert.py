"""The rembert family's converter (through load_hf_backbone): parity with transformers'
RemBertModel and clear errors for bad checkpoints."""

import json
import os

import keras
import numpy as np
import pytest
import safetensors.numpy

from esci_tf.errors import DataError
from esci_tf.models import load_hf_backbone
from esci_tf.models.rembert.backbone import RemBertBackbone
from tests import hf_fixtures

TOKEN_IDS = np.array([[5, 17, 33, 9, 101, 64, 7, 90, 2], [5, 44, 12, 8, 2, 0, 0, 0, 0]], "int32")
PADDING_MASK = (TOKEN_IDS != 0).astype("int32")
SEGMENT_IDS = np.array([[0, 0, 0, 0, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0, 0, 0]], "int32")
INPUTS = {"token_ids": TOKEN_IDS, "segment_ids": SEGMENT_IDS, "padding_mask": PADDING_MASK}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("rembert"))
    hf_fixtures.write_tiny_checkpoint("rembert", directory, seed=1)
    return directory


@pytest.fixture(scope="module")
def reference(checkpoint):
    return hf_fixtures.reference_hidden_states(checkpoint, TOKEN_IDS, PADDING_MASK, SEGMENT_IDS)


def _hidden_states(backbone):
    """Projected embeddings and every layer's output, as transformers' hidden_states."""
    layers = [f"transformer_layer_{i}" for i in range(backbone.num_layers)]
    names = ["embeddings_projection"] + layers
    model = keras.Model(backbone.inputs, [backbone.get_layer(n).output for n in names])
    return [x.numpy() for x in model(INPUTS)]


def test_parity_with_transformers_every_layer_with_padding(checkpoint, reference):
    backbone = load_hf_backbone(checkpoint)
    assert isinstance(backbone, RemBertBackbone)
    outputs = backbone(INPUTS)
    np.testing.assert_allclose(outputs["sequence_output"].numpy(), reference[-1], atol=1e-4)
    hidden_states = _hidden_states(backbone)
    assert len(hidden_states) == len(reference) == 3
    for ours, theirs in zip(hidden_states, reference):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_pooled_output_matches_transformers_pooler(checkpoint, reference):
    weights = hf_fixtures.read_weights(checkpoint)
    expected = np.tanh(reference[-1][:, 0] @ weights["pooler.dense.weight"].T
                       + weights["pooler.dense.bias"])
    pooled = load_hf_backbone(checkpoint)(INPUTS)["pooled_output"].numpy()
    np.testing.assert_allclose(pooled, expected, atol=1e-4)


def test_prefixed_keys_and_head_weights_load(checkpoint, reference, tmp_path):
    tensors = {f"rembert.{k}": v for k, v in hf_fixtures.read_weights(checkpoint).items()}
    tensors["cls.predictions.output_bias"] = np.zeros([128], "float32")
    directory = hf_fixtures.write_variant(checkpoint, str(tmp_path), tensors)
    outputs = load_hf_backbone(directory)(INPUTS)
    np.testing.assert_allclose(outputs["sequence_output"].numpy(), reference[-1], atol=1e-4)


def test_sharded_checkpoint_with_gamma_beta_layer_norm_names_loads(checkpoint, reference, tmp_path):
    tensors = {}
    for key, value in hf_fixtures.read_weights(checkpoint).items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma")
        key = key.replace("LayerNorm.bias", "LayerNorm.beta")
        tensors[key] = value
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[::2],
              "model-00002-of-00002.safetensors": keys[1::2]}
    os.makedirs(tmp_path / "sharded")
    with open(tmp_path / "sharded" / "config.json", "w") as f:
        json.dump(hf_fixtures.read_config(checkpoint), f)
    for name, shard_keys in shards.items():
        safetensors.numpy.save_file({k: tensors[k] for k in shard_keys},
                                    str(tmp_path / "sharded" / name))
    index = {"weight_map": {k: name for name, shard_keys in shards.items() for k in shard_keys}}
    with open(tmp_path / "sharded" / "model.safetensors.index.json", "w") as f:
        json.dump(index, f)
    outputs = load_hf_backbone(str(tmp_path / "sharded"))(INPUTS)
    np.testing.assert_allclose(outputs["sequence_output"].numpy(), reference[-1], atol=1e-4)


def test_checkpoint_without_pooler_loads_encoder(checkpoint, reference, tmp_path):
    tensors = {k: v for k, v in hf_fixtures.read_weights(checkpoint).items()
               if not k.startswith("pooler.")}
    directory = hf_fixtures.write_variant(checkpoint, str(tmp_path), tensors)
    outputs = load_hf_backbone(directory)(INPUTS)
    np.testing.assert_allclose(outputs["sequence_output"].numpy(), reference[-1], atol=1e-4)


def test_missing_unexpected_and_misshaped_weights_are_all_named(checkpoint, tmp_path):
    tensors = hf_fixtures.read_weights(checkpoint)
    del tensors["encoder.layer.1.attention.self.key.bias"]
    del tensors["embeddings.LayerNorm.weight"]
    tensors["encoder.layer.2.output.dense.weight"] = np.zeros([32, 64], "float32")
    tensors["encoder.layer.0.intermediate.dense.weight"] = np.zeros([32, 64], "float32")
    directory = hf_fixtures.write_variant(checkpoint, str(tmp_path), tensors)
    with pytest.raises(DataError) as error:
        load_hf_backbone(directory)
    message = str(error.value)
    assert os.path.join(directory, "model.safetensors") in message
    assert ("missing keys (2): embeddings.LayerNorm.weight, "
            "encoder.layer.1.attention.self.key.bias") in message
    assert "unexpected keys (1): encoder.layer.2.output.dense.weight" in message
    assert ("encoder.layer.0.intermediate.dense.weight: checkpoint shape (32, 64), "
            "expected (64, 32)") in message


def test_unsupported_config_is_refused(checkpoint, tmp_path):
    tensors = hf_fixtures.read_weights(checkpoint)
    directory = hf_fixtures.write_variant(checkpoint, str(tmp_path), tensors)
    config = hf_fixtures.read_config(directory)
    config.update(hidden_act="swish", is_decoder=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    with pytest.raises(DataError, match="config.json: unsupported RemBERT config: .*decoder") as e:
        load_hf_backbone(directory)
    assert "hidden_act 'swish'" in str(e.value)


def test_directory_without_weights_is_refused(checkpoint, tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(DataError, match="no config.json"):
        load_hf_backbone(str(tmp_path / "empty"))
    directory = tmp_path / "config_only"
    os.makedirs(directory)
    with open(directory / "config.json", "w") as f:
        json.dump(hf_fixtures.read_config(checkpoint), f)
    with pytest.raises(DataError, match="no model.safetensors"):
        load_hf_backbone(str(directory))


def test_real_google_rembert_config_is_representable():
    """google/rembert's config.json."""
    from esci_tf.models.rembert.convert import convert_backbone_config

    google_rembert = {
        "model_type": "rembert", "attention_probs_dropout_prob": 0, "hidden_act": "gelu",
        "hidden_dropout_prob": 0, "hidden_size": 1152, "initializer_range": 0.02,
        "intermediate_size": 4608, "max_position_embeddings": 512, "num_attention_heads": 18,
        "num_hidden_layers": 32, "type_vocab_size": 2, "vocab_size": 250300,
        "layer_norm_eps": 1e-12, "input_embedding_size": 256, "output_embedding_size": 1664,
        "pad_token_id": 0, "bos_token_id": 312, "eos_token_id": 313, "is_decoder": False,
    }
    assert convert_backbone_config(google_rembert) == dict(
        vocabulary_size=250300, num_layers=32, num_heads=18, hidden_dim=1152,
        intermediate_dim=4608, input_embedding_dim=256, dropout=0, max_sequence_length=512,
        num_segments=2, activation="gelu", layer_norm_epsilon=1e-12)


def test_bfloat16_checkpoint_loads(checkpoint, reference, tmp_path):
    import torch
    import safetensors.torch

    tensors = {k: torch.from_numpy(v).to(torch.bfloat16)
               for k, v in hf_fixtures.read_weights(checkpoint).items()}
    os.makedirs(tmp_path / "bf16")
    with open(tmp_path / "bf16" / "config.json", "w") as f:
        json.dump(hf_fixtures.read_config(checkpoint), f)
    safetensors.torch.save_file(tensors, str(tmp_path / "bf16" / "model.safetensors"))
    backbone = load_hf_backbone(str(tmp_path / "bf16"))
    assert backbone.token_embedding.embeddings.dtype == "float32"
    # bfloat16 weights keep ~3 significant digits: close to, not equal to, the float32 model.
    sequence_output = backbone(INPUTS)["sequence_output"].numpy()
    np.testing.assert_allclose(sequence_output, reference[-1], atol=0.1)


def test_remote_directory_loads_through_tf_gfile(checkpoint, reference):
    """gs:// paths go through tf.io.gfile; TensorFlow's in-memory ram:// filesystem stands in."""
    import tensorflow as tf

    remote = "ram://h5_rembert_checkpoint"
    tf.io.gfile.makedirs(remote)
    for name in ("config.json", "model.safetensors"):
        tf.io.gfile.copy(os.path.join(checkpoint, name), f"{remote}/{name}", overwrite=True)
    outputs = load_hf_backbone(remote)(INPUTS)
    np.testing.assert_allclose(outputs["sequence_output"].numpy(), reference[-1], atol=1e-4)
