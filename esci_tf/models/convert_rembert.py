"""Loads a Hugging Face RemBERT checkpoint (config.json + safetensors) into a RemBertBackbone.

The port table is declarative (see esci_tf.models.hf_checkpoint); torch is not needed.
"""

from absl import logging

from esci_tf.data.errors import DataError
from esci_tf.models.hf_checkpoint import (
    BIAS,
    CONFIG_FILE,
    COPY,
    LINEAR,
    LINEAR_2_IN,
    encoder_shape,
    hf_file_path,
    port_weights,
    read_hf_checkpoint,
)
from esci_tf.models.rembert_backbone import RemBertBackbone

REMBERT_PREFIX = "rembert."
# Weights of heads a RemBERT checkpoint may carry; the backbone does not use them.
REMBERT_HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.", "lm_head.")
# transformers versions before 4.31 saved this position buffer; it holds no weights.
REMBERT_BUFFERS = ("embeddings.position_ids",)
# Hugging Face hidden_act -> RemBertBackbone activation.
REMBERT_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                       "relu": "relu"}


def rembert_backbone_config(hf_config, config_path="config.json"):
    """RemBertBackbone arguments for a Hugging Face RemBERT config; DataError if unsupported."""
    problems = []
    if hf_config.get("model_type") != "rembert":
        problems.append(f"model_type is {hf_config.get('model_type')!r}, expected 'rembert'")
    if hf_config.get("is_decoder") or hf_config.get("add_cross_attention"):
        problems.append("decoder / cross-attention RemBERT is not supported (encoder only)")
    activation = hf_config.get("hidden_act", "gelu")
    if activation not in REMBERT_ACTIVATIONS:
        problems.append(f"hidden_act {activation!r} is not one of {sorted(REMBERT_ACTIVATIONS)}")
    required = ["vocab_size", "num_hidden_layers", "num_attention_heads", "hidden_size",
                "intermediate_size", "input_embedding_size", "max_position_embeddings"]
    absent = [k for k in required if k not in hf_config]
    if absent:
        problems.append(f"missing config entries: {', '.join(absent)}")
    elif hf_config["hidden_size"] % hf_config["num_attention_heads"]:
        problems.append(f"hidden_size {hf_config['hidden_size']} is not divisible by "
                        f"num_attention_heads {hf_config['num_attention_heads']}")
    if problems:
        raise DataError("unsupported RemBERT config: " + "; ".join(problems), path=config_path)
    return dict(
        **encoder_shape(hf_config),
        input_embedding_dim=hf_config["input_embedding_size"],
        dropout=hf_config.get("hidden_dropout_prob", 0.0),
        max_sequence_length=hf_config["max_position_embeddings"],
        num_segments=hf_config.get("type_vocab_size", 2),
        activation=REMBERT_ACTIVATIONS[activation],
        layer_norm_epsilon=hf_config.get("layer_norm_eps", 1e-12),
    )


def _layer_norm(hf_name, layer):
    return [(f"{hf_name}.weight", layer.gamma, COPY), (f"{hf_name}.bias", layer.beta, COPY)]


def _dense(hf_name, layer, layout=LINEAR):
    return [(f"{hf_name}.weight", layer.kernel, layout), (f"{hf_name}.bias", layer.bias, BIAS)]


def rembert_port_table(backbone, with_pooler=True):
    """(HF key without "rembert.", Keras variable, layout) for every RemBertBackbone weight."""
    table = [
        ("embeddings.word_embeddings.weight", backbone.token_embedding.embeddings, COPY),
        ("embeddings.position_embeddings.weight",
         backbone.position_embedding.position_embeddings, COPY),
        ("embeddings.token_type_embeddings.weight", backbone.segment_embedding.embeddings, COPY),
        *_layer_norm("embeddings.LayerNorm", backbone.embeddings_layer_norm),
        *_dense("encoder.embedding_hidden_mapping_in", backbone.embeddings_projection),
    ]
    for i, block in enumerate(backbone.transformer_layers):
        hf = f"encoder.layer.{i}"
        attention = block._self_attention_layer
        table += [
            *_dense(f"{hf}.attention.self.query", attention.query_dense),
            *_dense(f"{hf}.attention.self.key", attention.key_dense),
            *_dense(f"{hf}.attention.self.value", attention.value_dense),
            *_dense(f"{hf}.attention.output.dense", attention.output_dense, LINEAR_2_IN),
            *_layer_norm(f"{hf}.attention.output.LayerNorm", block._self_attention_layer_norm),
            *_dense(f"{hf}.intermediate.dense", block._feedforward_intermediate_dense),
            *_dense(f"{hf}.output.dense", block._feedforward_output_dense),
            *_layer_norm(f"{hf}.output.LayerNorm", block._feedforward_layer_norm),
        ]
    if with_pooler:
        table += _dense("pooler.dense", backbone.pooled_dense)
    return table


def load_rembert(hf_dir, dtype=None, dropout=None):
    """A RemBertBackbone with the weights of the Hugging Face RemBERT checkpoint in `hf_dir`.

    hf_dir: local or gs:// directory with config.json and model.safetensors (keys with or
    without the "rembert." prefix; MLM/classifier head weights are ignored and logged).
    A checkpoint saved without the pooler (e.g. from RemBertForMaskedLM) loads with a freshly
    initialised pooler and a warning. dropout: overrides the config's hidden_dropout_prob.
    """
    config, tensors, weights_path = read_hf_checkpoint(hf_dir, REMBERT_PREFIX)
    backbone_config = rembert_backbone_config(config, hf_file_path(hf_dir, CONFIG_FILE))
    if dropout is not None:
        backbone_config["dropout"] = dropout
    backbone = RemBertBackbone(**backbone_config, dtype=dtype)
    with_pooler = any(k.startswith("pooler.") for k in tensors)
    if not with_pooler:
        logging.warning("%s has no pooler weights: pooled_output uses a freshly initialised "
                        "pooler (sequence_output is fully loaded)", weights_path)
    port_weights(tensors, rembert_port_table(backbone, with_pooler), weights_path,
                 "RemBertBackbone", ignored_prefixes=REMBERT_HEAD_PREFIXES,
                 ignored_keys=REMBERT_BUFFERS)
    return backbone
