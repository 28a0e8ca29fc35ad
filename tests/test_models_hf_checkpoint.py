"""The one checked safetensors loader, on every family: prefixes, legacy names, shards, remote
directories, bfloat16, and one DataError naming every bad key and the file."""

import json
import os

import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

pytest.importorskip("torch")

from esci_tf.errors import DataError  # noqa: E402
from esci_tf.models import load_hf_backbone, registry  # noqa: E402
from tests import hf_fixtures  # noqa: E402

OVERRIDES = {"xlm-roberta": dict(layer_norm_eps=1e-5)}
# A head weight each family's checkpoints may carry next to the encoder.
HEAD_KEYS = {"bert": "cls.predictions.bias", "xlm-roberta": "lm_head.bias",
             "deberta-v2": "lm_predictions.lm_head.bias", "rembert": "cls.predictions.output_bias"}
MODEL_TYPES = sorted(HEAD_KEYS)


@pytest.fixture(scope="module", params=MODEL_TYPES)
def checkpoint(request, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp(request.param))
    hf_fixtures.write_tiny_checkpoint(request.param, directory, seed=4,
                                      **OVERRIDES.get(request.param, {}))
    return request.param, directory, load_hf_backbone(directory)


def _weights(backbone):
    return {w.path: w.numpy() for w in backbone.weights}


def _write_config(source, directory):
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(hf_fixtures.read_config(source), f)


def test_prefixed_legacy_named_sharded_remote_checkpoint_loads_the_same(checkpoint, tmp_path):
    model_type, directory, reference = checkpoint
    entry = registry.entry_for_model_type(model_type)
    tensors = {}
    for key, value in hf_fixtures.read_weights(directory).items():
        key = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        tensors[entry.hf_prefix + key] = value
    tensors[HEAD_KEYS[model_type]] = np.zeros([7], "float32")  # ignored (and logged)
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[::2],
              "model-00002-of-00002.safetensors": keys[1::2]}
    local = tmp_path / "variant"
    local.mkdir()
    _write_config(directory, local)
    for name, shard_keys in shards.items():
        safetensors.numpy.save_file({k: tensors[k] for k in shard_keys}, str(local / name))
    index = {"weight_map": {k: name for name, shard_keys in shards.items() for k in shard_keys}}
    (local / "model.safetensors.index.json").write_text(json.dumps(index))
    remote = f"ram://esci_tf_unified_{model_type}"
    tf.io.gfile.makedirs(remote)
    for name in os.listdir(local):
        tf.io.gfile.copy(str(local / name), f"{remote}/{name}", overwrite=True)

    loaded = load_hf_backbone(remote)
    expected = _weights(reference)
    for path, value in _weights(loaded).items():
        np.testing.assert_array_equal(value, expected[path], err_msg=path)


def test_bfloat16_checkpoint_is_widened(checkpoint, tmp_path):
    import safetensors.torch
    import torch

    model_type, directory, reference = checkpoint
    tensors = {k: torch.from_numpy(v).to(torch.bfloat16)
               for k, v in hf_fixtures.read_weights(directory).items()}
    _write_config(directory, tmp_path)
    safetensors.torch.save_file(tensors, str(tmp_path / "model.safetensors"))
    loaded = load_hf_backbone(str(tmp_path))
    expected = _weights(reference)
    for path, value in _weights(loaded).items():
        assert value.dtype == np.float32, path
        # bfloat16 keeps ~3 significant digits (XLM-R sums two such tables into its positions).
        np.testing.assert_allclose(value, expected[path], rtol=1e-2, atol=4e-3, err_msg=path)


def test_every_bad_key_is_named_in_one_error(checkpoint, tmp_path):
    model_type, directory, _ = checkpoint
    tensors = hf_fixtures.read_weights(directory)
    del tensors["encoder.layer.1.output.dense.bias"]
    shrunk = "encoder.layer.0.intermediate.dense.bias"
    tensors[shrunk] = tensors[shrunk][:10]
    tensors["encoder.layer.0.extra_gate.weight"] = np.zeros([2, 2], "float32")
    bad = hf_fixtures.write_variant(directory, str(tmp_path), tensors)
    with pytest.raises(DataError) as error:
        load_hf_backbone(bad)
    message = str(error.value)
    assert message.startswith(os.path.join(bad, "model.safetensors") + ": checkpoint does not match")
    assert "missing keys (1): encoder.layer.1.output.dense.bias |" in message
    assert "unexpected keys (1): encoder.layer.0.extra_gate.weight |" in message
    assert ("shape mismatches (1): encoder.layer.0.intermediate.dense.bias: checkpoint shape (10,), "
            "expected (64,)") in message


def test_mis_shaped_weight_through_a_keras_hub_hook_is_named(tmp_path):
    hf_fixtures.write_tiny_checkpoint("bert", str(tmp_path / "ok"))
    tensors = hf_fixtures.read_weights(str(tmp_path / "ok"))
    tensors["encoder.layer.0.attention.self.query.weight"] = np.zeros([16, 32], "float32")
    bad = hf_fixtures.write_variant(str(tmp_path / "ok"), str(tmp_path / "bad"), tensors)
    with pytest.raises(DataError, match=r"shape mismatches \(1\): encoder\.layer\.0\.attention\.self"
                                        r"\.query\.weight: checkpoint shape \(16, 32\), expected one "
                                        r"that converts to \(32, 4, 8\)"):
        load_hf_backbone(bad)


def test_weight_read_outside_port_weight_is_named_missing(tmp_path):
    # keras-hub's XLM-R converter reads the token-type table directly (folded into positions).
    hf_fixtures.write_tiny_checkpoint("xlm-roberta", str(tmp_path / "ok"), layer_norm_eps=1e-5)
    tensors = hf_fixtures.read_weights(str(tmp_path / "ok"))
    del tensors["embeddings.token_type_embeddings.weight"]
    bad = hf_fixtures.write_variant(str(tmp_path / "ok"), str(tmp_path / "bad"), tensors)
    with pytest.raises(DataError, match=r"missing keys \(1\): embeddings\.token_type_embeddings\.weight$"):
        load_hf_backbone(bad)


def test_same_weight_with_and_without_prefix_is_refused(tmp_path):
    hf_fixtures.write_tiny_checkpoint("bert", str(tmp_path / "ok"))
    tensors = hf_fixtures.read_weights(str(tmp_path / "ok"))
    tensors["bert.pooler.dense.bias"] = tensors["pooler.dense.bias"]
    bad = hf_fixtures.write_variant(str(tmp_path / "ok"), str(tmp_path / "bad"), tensors)
    with pytest.raises(DataError, match="'bert.pooler.dense.bias' and 'pooler.dense.bias' are the "
                                        "same weight 'pooler.dense.bias'|'pooler.dense.bias' and "
                                        "'bert.pooler.dense.bias' are the same weight"):
        load_hf_backbone(bad)
