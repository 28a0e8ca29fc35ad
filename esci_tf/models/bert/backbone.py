"""HFBertBackbone: keras-hub's BertBackbone with a selectable feed-forward activation."""

import keras
import keras_hub


@keras.saving.register_keras_serializable(package="esci_tf")
class HFBertBackbone(keras_hub.models.BertBackbone):
    """keras-hub `BertBackbone` with a selectable feed-forward activation.

    keras-hub's BERT always uses the tanh approximation of GELU; Hugging Face BERT checkpoints
    (`hidden_act: "gelu"`, e.g. all-MiniLM-L6-v2) use the exact erf GELU, and the difference
    (~3e-3 on hidden states) breaks parity. `hidden_activation="gelu"` selects the exact one.

    >>> import numpy as np
    >>> bb = HFBertBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                     intermediate_dim=16, max_sequence_length=16,
    ...                     hidden_activation="gelu")
    >>> x = {"token_ids": np.ones((1, 4), "int32"), "segment_ids": np.zeros((1, 4), "int32"),
    ...      "padding_mask": np.ones((1, 4), "int32")}
    >>> bb(x)["sequence_output"].shape
    TensorShape([1, 4, 8])
    """

    def __init__(self, *args, hidden_activation="gelu_approximate", **kwargs):
        super().__init__(*args, **kwargs)
        if hidden_activation != "gelu_approximate":
            activation = keras.activations.get(hidden_activation)
            for layer in self.transformer_layers:
                # The layers are already built by the functional constructor: swap the
                # activation on the built intermediate Dense and in the layer's config.
                layer.activation = activation
                layer._feedforward_intermediate_dense.activation = activation
        self.hidden_activation = hidden_activation

    def get_config(self):
        config = super().get_config()
        config["hidden_activation"] = self.hidden_activation
        return config
