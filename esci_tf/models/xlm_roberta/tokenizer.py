"""XLM-R's tokenizer (keras-hub's XLMRobertaTokenizer) from a Hugging Face directory, or the
embedded demo SentencePiece vocabulary."""

import os

import keras_hub

from esci_tf.models.hf_files import sentencepiece_tokenizer
from esci_tf.models.xlm_roberta.entry import ENTRY

DEMO_SPM_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                             "assets", "demo_spm.model")


def from_hf_dir(path: str):
    """The tokenizer of a local Hugging Face XLM-R directory (sentencepiece.bpe.model)."""
    return sentencepiece_tokenizer(path, ENTRY.hf_vocab_file, ENTRY.name,
                                   lambda proto: keras_hub.models.XLMRobertaTokenizer(proto=proto))


def demo_tokenizer():
    """The tokenizer of the shipped demo vocabulary (esci_tf/assets/demo_spm.model)."""
    with open(DEMO_SPM_PATH, "rb") as f:
        return keras_hub.models.XLMRobertaTokenizer(proto=f.read())
