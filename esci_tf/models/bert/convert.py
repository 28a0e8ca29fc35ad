"""Hugging Face BERT -> HFBertBackbone: keras-hub's converter, with this project's config checks.

keras-hub's BertBackbone assumes absolute positions and layer-norm epsilon 1e-12; the
feed-forward activation follows `hidden_act` (HFBertBackbone's `hidden_activation`).

>>> kwargs = convert_backbone_config({"vocab_size": 30, "num_hidden_layers": 2,
...     "num_attention_heads": 2, "hidden_size": 8, "intermediate_size": 16,
...     "max_position_embeddings": 32, "hidden_act": "gelu_new"})
>>> kwargs["hidden_activation"], kwargs["num_segments"], kwargs["dropout"]
('gelu_approximate', 2, 0.1)
"""

from keras_hub.src.utils.transformers import convert_bert

from esci_tf.models.hf_checkpoint import require_setting

# Hugging Face hidden_act -> HFBertBackbone hidden_activation.
ACTIVATIONS = {
    "gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate",
}


def convert_backbone_config(hf_config):
    """HFBertBackbone arguments; ConfigError for settings it cannot represent."""
    require_setting(hf_config, "bert", "position_embedding_type", ("absolute",))
    kwargs = convert_bert.convert_backbone_config(hf_config)
    require_setting(hf_config, "bert", "hidden_act", tuple(ACTIVATIONS))
    require_setting(hf_config, "bert", "layer_norm_eps", (1e-12,))
    kwargs["hidden_activation"] = ACTIVATIONS[hf_config.get("hidden_act", "gelu")]
    kwargs["num_segments"] = hf_config.get("type_vocab_size", 2)
    kwargs["dropout"] = hf_config.get("hidden_dropout_prob", 0.1)
    return kwargs


def convert_weights(backbone, loader, hf_config):
    """Every BertBackbone weight, the pooler included, through `loader.port_weight`."""
    convert_bert.convert_weights(backbone, loader, hf_config)
