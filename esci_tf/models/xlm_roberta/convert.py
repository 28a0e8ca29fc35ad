"""Hugging Face XLM-RoBERTa -> keras-hub XLMRobertaBackbone: keras-hub's converter, with this
project's config checks (absolute positions, exact GELU, layer-norm epsilon 1e-5).

>>> convert_backbone_config({"vocab_size": 30, "num_hidden_layers": 2,
...     "num_attention_heads": 2, "hidden_size": 8, "intermediate_size": 16,
...     "max_position_embeddings": 34, "layer_norm_eps": 1e-5})["max_sequence_length"]
32
"""

from keras_hub.src.utils.transformers import convert_xlm_roberta

from esci_tf.models.hf_checkpoint import require_setting


def convert_backbone_config(hf_config):
    """XLMRobertaBackbone arguments; ConfigError for settings it cannot represent."""
    require_setting(hf_config, "xlm-roberta", "position_embedding_type", ("absolute",))
    kwargs = convert_xlm_roberta.convert_backbone_config(hf_config)
    require_setting(hf_config, "xlm-roberta", "hidden_act", ("gelu",))
    require_setting(hf_config, "xlm-roberta", "layer_norm_eps", (1e-5,))
    kwargs["dropout"] = hf_config.get("hidden_dropout_prob", 0.1)
    return kwargs


def convert_weights(backbone, loader, hf_config):
    """Every XLMRobertaBackbone weight through `loader.port_weight` (the pooler is not used)."""
    convert_xlm_roberta.convert_weights(backbone, loader, hf_config)
