"""Text to tokens: the pair preprocessing shared by TFRecord building, prediction and serving,
and tokenizer loading through each backbone family's entry (esci_tf.models). Depends on
esci_tf.models one way: the models import nothing from here (a saved model's preprocessor class
is registered by importing esci_tf.preprocessing.fields_preprocessor before loading it)."""

from esci_tf.preprocessing.encode import preprocess_pairs
from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
from esci_tf.preprocessing.tokenizer_loader import BACKBONES, load_tokenizer

__all__ = ["BACKBONES", "PairPreprocessor", "load_tokenizer", "preprocess_pairs"]
