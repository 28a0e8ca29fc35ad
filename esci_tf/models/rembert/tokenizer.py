"""RemBERT's SentencePiece tokenizer (keras-hub has no RemBERT classes), and how to build it
from a Hugging Face directory."""

import os

import keras
import keras_hub

from esci_tf.models.hf_files import read_optional_json, sentencepiece_tokenizer, token_name
from esci_tf.models.rembert.entry import ENTRY


@keras.saving.register_keras_serializable(package="esci_tf")
class RemBertTokenizer(keras_hub.tokenizers.SentencePieceTokenizer):
    """A SentencePiece tokenizer that knows RemBERT's [CLS]/[SEP]/pad/[MASK] pieces.

    The ids come from the SentencePiece model itself (keras-hub raises if a piece is missing);
    the piece names can be overridden (a tokenizer_config.json may say e.g. "<pad>").
    """

    def __init__(self, proto=None, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                 mask_token="[MASK]", **kwargs):
        self._add_special_token(cls_token, "cls_token")
        self._add_special_token(sep_token, "sep_token")
        self._add_special_token(pad_token, "pad_token")
        self._add_special_token(mask_token, "mask_token")
        self._add_special_token(cls_token, "start_token")
        self._add_special_token(sep_token, "end_token")
        super().__init__(proto=proto, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(cls_token=self.cls_token, sep_token=self.sep_token,
                      pad_token=self.pad_token, mask_token=self.mask_token)
        return config


def from_hf_dir(path: str) -> RemBertTokenizer:
    """The tokenizer of a local Hugging Face RemBERT directory: sentencepiece.model and the
    special-token names of tokenizer_config.json / special_tokens_map.json."""
    config = read_optional_json(os.path.join(path, "tokenizer_config.json"))
    specials = read_optional_json(os.path.join(path, "special_tokens_map.json"))
    names = {}
    for name, default in (("cls_token", "[CLS]"), ("sep_token", "[SEP]"),
                          ("pad_token", "[PAD]"), ("mask_token", "[MASK]")):
        names[name] = token_name(config.get(name, specials.get(name)), default)
    return sentencepiece_tokenizer(path, ENTRY.hf_vocab_file, ENTRY.name,
                                   lambda proto: RemBertTokenizer(proto=proto, **names))
