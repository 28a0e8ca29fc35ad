"""A keras-hub BertTokenizer that normalizes text the way Hugging Face's BERT tokenizer does.

keras-hub's WordPiece pre-tokenizer splits on ASCII whitespace only and lowercases with
NFKC case folding after stripping accents, so "500\\u00a0gr" or "´07" become [UNK] where
Hugging Face (and the original BERT) give real pieces. This subclass applies BERT's own
normalization first (drop control, format and private-use characters, map every Unicode space to " ", lowercase,
strip accents) with TF ops, then lets keras-hub split and run WordPiece.
"""

import os

import keras
import keras_hub
import tensorflow as tf
import tensorflow_text as tf_text

from esci_tf.models.bert.entry import ENTRY
from esci_tf.models.hf_files import read_optional_json


@keras.saving.register_keras_serializable(package="esci_tf")
class HFBertTokenizer(keras_hub.models.BertTokenizer):
    """BertTokenizer with Hugging Face's normalization; `strip_accents=None` follows `lowercase`."""

    def __init__(self, vocabulary=None, lowercase=False, strip_accents=None, **kwargs):
        self.bert_lowercase = bool(lowercase)
        self.bert_strip_accents = self.bert_lowercase if strip_accents is None else bool(strip_accents)
        super().__init__(vocabulary=vocabulary, lowercase=False, strip_accents=False, **kwargs)

    def _use_tf_workflow(self):
        # The normalization is written in TF ops; always take keras-hub's TF path.
        return True

    def normalize(self, inputs):
        """BERT's text cleaning, lowercasing and accent stripping of a string tensor."""
        text = tf.strings.regex_replace(inputs, r"[\t\n\r\p{Zs}]", " ")
        text = tf.strings.regex_replace(text, r"[\p{C}\x{FFFD}]", "")
        if self.bert_lowercase:
            text = tf.strings.lower(text, encoding="utf-8")
        if self.bert_strip_accents:
            text = tf_text.normalize_utf8(text, "NFD")
            text = tf.strings.regex_replace(text, r"\p{Mn}", "")
        return text

    def _tokenize_tf(self, inputs):
        if not isinstance(inputs, tf.RaggedTensor):
            inputs = tf.convert_to_tensor(inputs)
        return super()._tokenize_tf(self.normalize(inputs))

    def get_config(self):
        config = super().get_config()
        # keras-hub's WordPieceTokenizer config leaves split_on_cjk out.
        config.update(lowercase=self.bert_lowercase, strip_accents=self.bert_strip_accents,
                      split_on_cjk=self.split_on_cjk)
        return config


def from_hf_dir(path: str) -> HFBertTokenizer:
    """The tokenizer of a local Hugging Face BERT directory: vocab.txt (or a fast-only
    tokenizer.json) and the casing settings of tokenizer_config.json."""
    config = read_optional_json(os.path.join(path, "tokenizer_config.json"))
    lowercase = bool(config.get("do_lower_case", True))
    strip_accents = config.get("strip_accents")
    strip_accents = lowercase if strip_accents is None else bool(strip_accents)
    vocab_path = os.path.join(path, ENTRY.hf_vocab_file)
    if os.path.exists(vocab_path):
        with open(vocab_path, encoding="utf-8") as f:
            vocabulary = [line.rstrip("\n") for line in f]
    else:
        vocabulary = _vocab_from_tokenizer_json(path)
    return HFBertTokenizer(vocabulary=vocabulary, lowercase=lowercase, strip_accents=strip_accents,
                           split_on_cjk=bool(config.get("tokenize_chinese_chars", True)))


def _vocab_from_tokenizer_json(path: str) -> list:
    """A WordPiece vocabulary (id order) from a fast-only tokenizer.json."""
    fast = read_optional_json(os.path.join(path, "tokenizer.json"))
    vocab = fast.get("model", {}).get("vocab")
    if not isinstance(vocab, dict):
        raise FileNotFoundError(f"{path}: no {ENTRY.hf_vocab_file} and no WordPiece vocab in "
                                "tokenizer.json")
    return [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
