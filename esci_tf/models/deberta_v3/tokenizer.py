"""DeBERTa-v3's tokenizer (keras-hub's DebertaV3Tokenizer) from a Hugging Face directory."""

import keras_hub

from esci_tf.models.deberta_v3.entry import ENTRY
from esci_tf.models.hf_files import sentencepiece_tokenizer


def from_hf_dir(path: str):
    """The tokenizer of a local Hugging Face DeBERTa-v3 directory (spm.model)."""
    return sentencepiece_tokenizer(path, ENTRY.hf_vocab_file, ENTRY.name,
                                   lambda proto: keras_hub.models.DebertaV3Tokenizer(proto=proto))
