"""The names of a model's inputs: int32 [batch, length] tensors from the PairPreprocessor, stored
in every TFRecord and read by every model (esci_tf.models.CrossEncoder takes the ones its
backbone uses)."""

MODEL_INPUT_KEYS = ("token_ids", "segment_ids", "padding_mask")
