"""load_tokenizer: Hugging Face dirs, keras-hub preset dirs, remote (tf.io.gfile) dirs, errors."""

import json
import os

import pytest
import tensorflow as tf

from esci_tf.models.rembert.tokenizer import RemBertTokenizer
from esci_tf.preprocessing import load_tokenizer
from esci_tf.models.bert.tokenizer import HFBertTokenizer
from tests import preprocessing_fixtures

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "Red", "shoe", "cafe", "café"]


def _ids(tokenizer, texts):
    return tf.function(lambda x: tokenizer(x), input_signature=[tf.TensorSpec([None], tf.string)])(
        tf.constant(texts)).to_list()


def _write_bert_dir(directory, do_lower_case):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": do_lower_case}, f)
    return directory


def test_bert_hf_dir_reads_lowercasing(tmp_path):
    uncased = load_tokenizer("bert", _write_bert_dir(str(tmp_path / "uncased"), True))
    cased = load_tokenizer("bert", _write_bert_dir(str(tmp_path / "cased"), False))
    assert isinstance(uncased, HFBertTokenizer)
    assert _ids(uncased, ["Red CAFÉ"]) == [[5, 8]]  # lowercased, accents stripped
    assert _ids(cased, ["Red café"]) == [[6, 9]]
    restored = HFBertTokenizer.from_config({**cased.get_config(), "vocabulary": VOCAB})
    assert (restored.bert_lowercase, restored.bert_strip_accents, restored.split_on_cjk) == (False, False, True)
    assert _ids(restored, ["Red café"]) == [[6, 9]]


def test_bert_vocab_from_fast_tokenizer_json(tmp_path):
    directory = tmp_path / "fast_only"
    directory.mkdir()
    (directory / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {t: i for i, t in enumerate(VOCAB)}}}))
    tokenizer = load_tokenizer("bert", str(directory))
    assert tokenizer.get_vocabulary() == VOCAB


@pytest.mark.parametrize("kind", ["xlm_roberta", "rembert"])
def test_keras_hub_preset_dir_round_trip(kind, tmp_path):
    if kind == "xlm_roberta":
        tokenizer = load_tokenizer(kind)
    else:
        tokenizer = load_tokenizer(kind, preprocessing_fixtures.write_spm_dir(kind, str(tmp_path / "hf")))
    preset = str(tmp_path / "preset")
    tokenizer.save_to_preset(preset)
    loaded = load_tokenizer(kind, preset)
    assert type(loaded) is type(tokenizer)
    texts = ["red running shoes", "cafetera negro"]
    assert _ids(loaded, texts) == _ids(tokenizer, texts)


def test_remote_dir_is_copied_through_gfile(tmp_path):
    local = preprocessing_fixtures.write_spm_dir("rembert", str(tmp_path / "hf"))
    remote = "ram://esci_tf_test_tokenizer"
    tf.io.gfile.makedirs(remote)
    for name in os.listdir(local):
        tf.io.gfile.copy(os.path.join(local, name), f"{remote}/{name}", overwrite=True)
    from_remote = load_tokenizer("rembert", remote)
    assert isinstance(from_remote, RemBertTokenizer)
    assert from_remote.cls_token_id == load_tokenizer("rembert", local).cls_token_id
    assert _ids(from_remote, ["red shoes"]) == _ids(load_tokenizer("rembert", local), ["red shoes"])


def test_rembert_special_ids_come_from_the_model(tmp_path):
    tokenizer = load_tokenizer("rembert", preprocessing_fixtures.write_spm_dir("rembert", str(tmp_path / "hf")))
    vocabulary = tokenizer.get_vocabulary()
    assert vocabulary[tokenizer.cls_token_id] == "[CLS]"
    assert vocabulary[tokenizer.sep_token_id] == "[SEP]"
    assert vocabulary[tokenizer.pad_token_id] == "[PAD]"


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone 'gpt2'"):
        load_tokenizer("gpt2")
    with pytest.raises(ValueError, match="needs a tokenizer path"):
        load_tokenizer("deberta_v3")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer("bert", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="spm.model"):
        load_tokenizer("deberta_v3", str(tmp_path))
    with pytest.raises(ValueError, match="no rembert presets"):
        load_tokenizer("rembert", "rembert_base")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "sentencepiece.model").write_bytes(
        open(os.path.join(preprocessing_fixtures.write_spm_dir("xlm_roberta", str(tmp_path / "x")),
                          "sentencepiece.bpe.model"), "rb").read())
    with pytest.raises(ValueError, match=r"sentencepiece.model: cannot build the rembert tokenizer: Cannot find special token"):
        load_tokenizer("rembert", str(bad))
