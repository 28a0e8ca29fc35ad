"""RemBERT's SentencePiece tokenizer (keras-hub has no RemBERT classes)."""

import keras
import keras_hub


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
