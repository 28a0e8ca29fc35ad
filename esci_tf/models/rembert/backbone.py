"""RemBertBackbone: the RemBERT encoder (Chung et al., 2021) built from keras-hub layers.

keras-hub has no RemBERT. This backbone follows transformers' RemBertModel: word, position and
token-type embeddings of width `input_embedding_dim` are summed and layer-normalised, projected
to `hidden_dim` by a dense layer, then run through post-LN transformer layers (exact GELU,
attention scaled by 1/sqrt(head_dim)); the pooler is a tanh dense layer on the first token.
RemBERT's `output_embedding_size` only shapes its MLM head, which this backbone does not have.
Imported only when a RemBERT model is built or loaded (esci_tf.models.registry).
"""

import keras
import keras_hub
from keras.layers import ReversibleEmbedding


@keras.saving.register_keras_serializable(package="esci_tf")
def gelu_tanh(x):
    """The tanh approximation of GELU (Hugging Face "gelu_new" / "gelu_pytorch_tanh")."""
    return keras.activations.gelu(x, approximate=True)


# Backbone `activation` names -> functions. "gelu" is the exact (erf) GELU, as torch's nn.GELU.
ACTIVATIONS = {
    "gelu": keras.activations.gelu,
    "gelu_tanh": gelu_tanh,
    "relu": keras.activations.relu,
}


def rembert_kernel_initializer(stddev=0.02):
    """RemBERT's initializer_range as a truncated normal."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="esci_tf")
class RemBertBackbone(keras_hub.models.Backbone):
    """RemBERT encoder: inputs token_ids, segment_ids, padding_mask (int32 [B, L]).

    Outputs {"sequence_output": [B, L, hidden_dim], "pooled_output": [B, hidden_dim]}.
    The output of layer i is `get_layer(f"transformer_layer_{i}").output`; the projected
    embeddings are `get_layer("embeddings_projection").output`.

    Args:
        vocabulary_size: size of the token vocabulary.
        num_layers: number of transformer layers.
        num_heads: attention heads per layer (hidden_dim must be divisible by it).
        hidden_dim: width of the transformer layers and the pooler.
        intermediate_dim: width of the feedforward layer.
        input_embedding_dim: width of the token/position/segment embeddings.
        dropout: dropout rate of embeddings, attention and feedforward (RemBERT uses 0).
        max_sequence_length: number of learned positions.
        num_segments: number of token types.
        activation: feedforward activation, a key of ACTIVATIONS ("gelu" is exact GELU).
        layer_norm_epsilon: epsilon of every layer norm.
        dtype: dtype or `keras.DTypePolicy` for computations and weights.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        input_embedding_dim=256,
        dropout=0.0,
        max_sequence_length=512,
        num_segments=2,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        dtype=None,
        **kwargs,
    ):
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            input_dim=vocabulary_size,
            output_dim=input_embedding_dim,
            embeddings_initializer=rembert_kernel_initializer(),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = keras_hub.layers.PositionEmbedding(
            sequence_length=max_sequence_length,
            initializer=rembert_kernel_initializer(),
            dtype=dtype,
            name="position_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            input_dim=num_segments,
            output_dim=input_embedding_dim,
            embeddings_initializer=rembert_kernel_initializer(),
            dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_add = keras.layers.Add(dtype=dtype, name="embeddings_add")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            axis=-1, epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = keras.layers.Dropout(
            dropout, dtype=dtype, name="embeddings_dropout"
        )
        self.embeddings_projection = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=rembert_kernel_initializer(),
            dtype=dtype,
            name="embeddings_projection",
        )
        self.transformer_layers = []
        for i in range(num_layers):
            self.transformer_layers.append(
                keras_hub.layers.TransformerEncoder(
                    num_heads=num_heads,
                    intermediate_dim=intermediate_dim,
                    activation=ACTIVATIONS[activation],
                    dropout=dropout,
                    layer_norm_epsilon=layer_norm_epsilon,
                    kernel_initializer=rembert_kernel_initializer(),
                    dtype=dtype,
                    name=f"transformer_layer_{i}",
                )
            )
        self.pooled_dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=rembert_kernel_initializer(),
            activation="tanh",
            dtype=dtype,
            name="pooled_dense",
        )

        # === Functional model ===
        token_id_input = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_id_input = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding_mask_input = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        tokens = self.token_embedding(token_id_input)
        positions = self.position_embedding(tokens)
        segments = self.segment_embedding(segment_id_input)
        x = self.embeddings_add((tokens, positions, segments))
        x = self.embeddings_layer_norm(x)
        x = self.embeddings_dropout(x)
        x = self.embeddings_projection(x)
        for transformer_layer in self.transformer_layers:
            x = transformer_layer(x, padding_mask=padding_mask_input)
        sequence_output = x
        pooled_output = self.pooled_dense(x[:, 0, :])
        super().__init__(
            inputs={
                "token_ids": token_id_input,
                "segment_ids": segment_id_input,
                "padding_mask": padding_mask_input,
            },
            outputs={"sequence_output": sequence_output, "pooled_output": pooled_output},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.input_embedding_dim = input_embedding_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.cls_token_index = 0

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "input_embedding_dim": self.input_embedding_dim,
                "dropout": self.dropout,
                "max_sequence_length": self.max_sequence_length,
                "num_segments": self.num_segments,
                "activation": self.activation,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
