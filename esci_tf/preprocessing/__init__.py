"""Tokenizers and the one pair preprocessing shared by TFRecord building, prediction and serving."""

from esci_tf.models.rembert.tokenizer import RemBertTokenizer
from esci_tf.preprocessing.encode import preprocess_pairs
from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
from esci_tf.preprocessing.tokenizer_loader import BACKBONES, load_tokenizer

__all__ = ["BACKBONES", "PairPreprocessor", "RemBertTokenizer", "load_tokenizer", "preprocess_pairs"]
