"""Hugging Face RemBERT -> RemBertBackbone (keras-hub has no RemBERT).

A checkpoint saved without the pooler (e.g. from RemBertForMaskedLM) loads with a freshly
initialised pooler and a warning.

>>> convert_backbone_config({"model_type": "rembert", "vocab_size": 30, "num_hidden_layers": 2,
...     "num_attention_heads": 2, "hidden_size": 8, "intermediate_size": 16,
...     "input_embedding_size": 4, "max_position_embeddings": 32})["input_embedding_dim"]
4
"""

from absl import logging

from esci_tf.models.hf_checkpoint import ConfigError, encoder_shape
from esci_tf.models.hf_layouts import LINEAR_2_IN, port_dense, port_layer_norm

# Hugging Face hidden_act -> RemBertBackbone activation.
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
               "relu": "relu"}


def convert_backbone_config(hf_config):
    """RemBertBackbone arguments for a Hugging Face RemBERT config; ConfigError if unsupported."""
    problems = []
    if hf_config.get("model_type") != "rembert":
        problems.append(f"model_type is {hf_config.get('model_type')!r}, expected 'rembert'")
    if hf_config.get("is_decoder") or hf_config.get("add_cross_attention"):
        problems.append("decoder / cross-attention RemBERT is not supported (encoder only)")
    activation = hf_config.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        problems.append(f"hidden_act {activation!r} is not one of {sorted(ACTIVATIONS)}")
    required = ["vocab_size", "num_hidden_layers", "num_attention_heads", "hidden_size",
                "intermediate_size", "input_embedding_size", "max_position_embeddings"]
    absent = [k for k in required if k not in hf_config]
    if absent:
        problems.append(f"missing config entries: {', '.join(absent)}")
    elif hf_config["hidden_size"] % hf_config["num_attention_heads"]:
        problems.append(f"hidden_size {hf_config['hidden_size']} is not divisible by "
                        f"num_attention_heads {hf_config['num_attention_heads']}")
    if problems:
        raise ConfigError("unsupported RemBERT config: " + "; ".join(problems))
    return dict(
        **encoder_shape(hf_config),
        input_embedding_dim=hf_config["input_embedding_size"],
        dropout=hf_config.get("hidden_dropout_prob", 0.0),
        max_sequence_length=hf_config["max_position_embeddings"],
        num_segments=hf_config.get("type_vocab_size", 2),
        activation=ACTIVATIONS[activation],
        layer_norm_epsilon=hf_config.get("layer_norm_eps", 1e-12),
    )


def convert_weights(backbone, loader, hf_config):
    """Every RemBertBackbone weight through `loader.port_weight` (keys without "rembert.")."""
    loader.port_weight(backbone.token_embedding.embeddings, "embeddings.word_embeddings.weight")
    loader.port_weight(backbone.position_embedding.position_embeddings,
                       "embeddings.position_embeddings.weight")
    loader.port_weight(backbone.segment_embedding.embeddings,
                       "embeddings.token_type_embeddings.weight")
    port_layer_norm(loader, backbone.embeddings_layer_norm, "embeddings.LayerNorm")
    port_dense(loader, backbone.embeddings_projection, "encoder.embedding_hidden_mapping_in")
    for i, block in enumerate(backbone.transformer_layers):
        hf = f"encoder.layer.{i}"
        attention = block._self_attention_layer
        port_dense(loader, attention.query_dense, f"{hf}.attention.self.query")
        port_dense(loader, attention.key_dense, f"{hf}.attention.self.key")
        port_dense(loader, attention.value_dense, f"{hf}.attention.self.value")
        port_dense(loader, attention.output_dense, f"{hf}.attention.output.dense", LINEAR_2_IN)
        port_layer_norm(loader, block._self_attention_layer_norm, f"{hf}.attention.output.LayerNorm")
        port_dense(loader, block._feedforward_intermediate_dense, f"{hf}.intermediate.dense")
        port_dense(loader, block._feedforward_output_dense, f"{hf}.output.dense")
        port_layer_norm(loader, block._feedforward_layer_norm, f"{hf}.output.LayerNorm")
    if any(name.startswith("pooler.") for name in loader.keys):
        port_dense(loader, backbone.pooled_dense, "pooler.dense")
    else:
        logging.warning("%s has no pooler weights: pooled_output uses a freshly initialised "
                        "pooler (sequence_output is fully loaded)", loader.weights_path)
