"""Hugging Face DeBERTa-v2/v3 -> keras-hub DebertaV3Backbone (keras-hub has no such converter).

DebertaV3Backbone hard-codes the DeBERTa-v3 layout (mDeBERTa-v3, DeBERTa-v3): relative
attention with log-bucketed positions, keys shared between content and position
(share_att_key), both c2p and p2c terms, layer-normed relative embeddings, no absolute
positions, no token types, exact GELU, layer-norm epsilon 1e-7. Configs outside that layout
are refused with every reason named.

Padded positions: transformers zeroes the embeddings of padded tokens and masks padded query
rows; keras-hub does neither. Outputs at real (unpadded) positions match; outputs at padded
positions differ and must not be used (pooling reads the first token or masks padding).
"""

from esci_tf.models.hf_checkpoint import ConfigError, encoder_shape
from esci_tf.models.hf_layouts import port_dense, port_layer_norm

# The only layer-norm epsilon DebertaV3Backbone supports (it is not a constructor argument).
KERAS_HUB_LAYER_NORM_EPSILON = 1e-7


def _unsupported_settings(hf_config):
    """Every reason DebertaV3Backbone cannot represent `hf_config` (empty when it can)."""
    problems = []
    if hf_config.get("model_type") != "deberta-v2":
        problems.append(f"model_type is {hf_config.get('model_type')!r}, expected 'deberta-v2'")
    required = ["vocab_size", "num_hidden_layers", "num_attention_heads", "hidden_size",
                "intermediate_size", "max_position_embeddings"]
    absent = [k for k in required if k not in hf_config]
    if absent:
        return problems + [f"missing config entries: {', '.join(absent)}"]
    hidden, heads = hf_config["hidden_size"], hf_config["num_attention_heads"]
    if hidden % heads:
        problems.append(f"hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    head_size = hf_config.get("attention_head_size", hidden // heads)
    if head_size != hidden // heads:
        problems.append(f"attention_head_size {head_size} != hidden_size / num_attention_heads")
    if not hf_config.get("relative_attention", False):
        problems.append("relative_attention is false (keras-hub always uses relative attention)")
    if hf_config.get("position_buckets", -1) <= 0:
        problems.append("position_buckets <= 0 (keras-hub always buckets relative positions)")
    pos_att_type = hf_config.get("pos_att_type") or []
    if isinstance(pos_att_type, str):
        pos_att_type = [p.strip() for p in pos_att_type.lower().split("|")]
    if sorted(pos_att_type) != ["c2p", "p2c"]:
        problems.append(f"pos_att_type {pos_att_type} (keras-hub computes exactly c2p and p2c)")
    if not hf_config.get("share_att_key", False):
        problems.append("share_att_key is false (keras-hub has no separate position projections)")
    if "layer_norm" not in str(hf_config.get("norm_rel_ebd", "none")):
        problems.append(f"norm_rel_ebd {hf_config.get('norm_rel_ebd', 'none')!r} "
                        "(keras-hub layer-normalises relative embeddings)")
    if hf_config.get("position_biased_input", True):
        problems.append("position_biased_input is true (keras-hub has no absolute positions)")
    if hf_config.get("type_vocab_size", 0) > 0:
        problems.append(f"type_vocab_size {hf_config['type_vocab_size']} > 0 "
                        "(keras-hub has no token-type embeddings)")
    if hf_config.get("embedding_size", hidden) != hidden:
        problems.append(f"embedding_size {hf_config['embedding_size']} != hidden_size {hidden} "
                        "(keras-hub has no embedding projection)")
    if hf_config.get("hidden_act", "gelu") != "gelu":
        problems.append(f"hidden_act {hf_config['hidden_act']!r} (keras-hub uses exact gelu)")
    if hf_config.get("layer_norm_eps", 1e-7) != KERAS_HUB_LAYER_NORM_EPSILON:
        problems.append(f"layer_norm_eps {hf_config['layer_norm_eps']} "
                        f"(keras-hub uses {KERAS_HUB_LAYER_NORM_EPSILON})")
    if hf_config.get("conv_kernel_size", 0) > 0:
        problems.append("conv_kernel_size > 0 (keras-hub has no convolution layer)")
    return problems


def convert_backbone_config(hf_config):
    """DebertaV3Backbone arguments for a Hugging Face deberta-v2 config; ConfigError naming
    every reason when it cannot be represented."""
    problems = _unsupported_settings(hf_config)
    if problems:
        raise ConfigError("config not representable by keras-hub DebertaV3Backbone: "
                          + "; ".join(problems))
    # keras-hub's log buckets use max_sequence_length where transformers uses
    # max_relative_positions (which falls back to max_position_embeddings when < 1).
    max_relative_positions = hf_config.get("max_relative_positions", -1)
    if max_relative_positions < 1:
        max_relative_positions = hf_config["max_position_embeddings"]
    return dict(
        **encoder_shape(hf_config),
        dropout=hf_config.get("hidden_dropout_prob", 0.1),
        max_sequence_length=max_relative_positions,
        bucket_size=hf_config["position_buckets"],
    )


def convert_weights(backbone, loader, hf_config):
    """Every DebertaV3Backbone weight through `loader.port_weight` (keys without "deberta.")."""
    loader.port_weight(backbone.token_embedding.embeddings, "embeddings.word_embeddings.weight")
    port_layer_norm(loader, backbone.get_layer("embeddings_layer_norm"), "embeddings.LayerNorm")
    relative = backbone.get_layer("rel_embedding")
    loader.port_weight(relative.rel_embeddings, "encoder.rel_embeddings.weight")
    port_layer_norm(loader, relative.layer_norm, "encoder.LayerNorm")
    for i in range(backbone.num_layers):
        block = backbone.get_layer(f"disentangled_attention_encoder_layer_{i}")
        attention = block._self_attention_layer
        hf = f"encoder.layer.{i}"
        port_dense(loader, attention._query_dense, f"{hf}.attention.self.query_proj")
        port_dense(loader, attention._key_dense, f"{hf}.attention.self.key_proj")
        port_dense(loader, attention._value_dense, f"{hf}.attention.self.value_proj")
        port_dense(loader, attention._output_dense, f"{hf}.attention.output.dense")
        port_layer_norm(loader, block._self_attention_layer_norm, f"{hf}.attention.output.LayerNorm")
        port_dense(loader, block._feedforward_intermediate_dense, f"{hf}.intermediate.dense")
        port_dense(loader, block._feedforward_output_dense, f"{hf}.output.dense")
        port_layer_norm(loader, block._feedforward_layer_norm, f"{hf}.output.LayerNorm")
