"""Tiny random Hugging Face checkpoints written by tests, and transformers reference outputs.

`write_tiny_checkpoint` saves a 2-layer, hidden-32 base model (config.json + model.safetensors,
weight keys without the model prefix, e.g. "embeddings.word_embeddings.weight") with every
parameter drawn at random, layer-norm scales included, so that a swapped or misplaced weight
shows in parity tests. `reference_hidden_states` runs the saved checkpoint with transformers
(torch CPU, eval mode) and returns the hidden states of the embedding output and every layer.
torch and transformers are test-only dependencies: import this module only from tests.

Note for BERT / XLM-R parity: keras-hub's BertBackbone and XLMRobertaBackbone use the tanh GELU
while the transformers configs say "gelu" (exact): on these random weights that alone differs by
~1e-4. Pass hidden_act="gelu_new" to write_tiny_checkpoint to test the weight mapping exactly.
"""

import json
import os
import shutil

import numpy as np
import safetensors.numpy
import torch
import transformers

transformers.utils.logging.disable_progress_bar()

TINY_SIZES = dict(
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)

# Per model type: the transformers config class and the settings that make it "tiny" and
# representative (DeBERTa in the v3 / mDeBERTa-v3 layout, RemBERT with decoupled embeddings).
TINY_CONFIGS = {
    "bert": (transformers.BertConfig, dict(max_position_embeddings=64, type_vocab_size=2)),
    "xlm-roberta": (
        transformers.XLMRobertaConfig,
        # Positions start after padding_idx (1), as in the real XLM-R checkpoints.
        dict(max_position_embeddings=66, type_vocab_size=1, pad_token_id=1),
    ),
    "deberta-v2": (
        transformers.DebertaV2Config,
        dict(
            max_position_embeddings=512,
            type_vocab_size=0,
            relative_attention=True,
            position_buckets=256,
            max_relative_positions=-1,
            share_att_key=True,
            pos_att_type=["p2c", "c2p"],
            norm_rel_ebd="layer_norm",
            position_biased_input=False,
            layer_norm_eps=1e-7,
            hidden_act="gelu",
        ),
    ),
    "rembert": (
        transformers.RemBertConfig,
        dict(
            input_embedding_size=16,
            output_embedding_size=24,
            max_position_embeddings=64,
            type_vocab_size=2,
            layer_norm_eps=1e-12,
            hidden_act="gelu",
            bos_token_id=2,
            eos_token_id=3,
        ),
    ),
}


def _randomize_parameters(model, seed):
    """Overwrites every parameter with seeded noise (layer-norm scales around 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.1
            if "LayerNorm.weight" in name:
                noise = noise + 1.0
            parameter.copy_(noise)


def write_tiny_checkpoint(model_type, directory, seed=0, **config_overrides):
    """Writes a tiny random `model_type` base model to `directory`; returns its config.

    model_type: "bert", "xlm-roberta", "deberta-v2" or "rembert". `config_overrides` replace
    entries of the tiny config (e.g. position_buckets=8 to exercise DeBERTa's log buckets).
    """
    if model_type not in TINY_CONFIGS:
        raise ValueError(
            f"unknown model_type {model_type!r}; expected one of {sorted(TINY_CONFIGS)}")
    config_class, settings = TINY_CONFIGS[model_type]
    config = config_class(**{**TINY_SIZES, **settings, **config_overrides})
    torch.manual_seed(seed)
    model = transformers.AutoModel.from_config(config)
    _randomize_parameters(model, seed)
    model.eval()
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory)  # transformers 5 always writes model.safetensors
    if not os.path.exists(os.path.join(directory, "model.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no model.safetensors in {directory}")
    return config


def read_config(directory):
    """The config.json of a checkpoint directory, as a dict."""
    with open(os.path.join(directory, "config.json")) as f:
        return json.load(f)


def reference_hidden_states(directory, token_ids, padding_mask, segment_ids=None):
    """transformers' hidden states for the checkpoint in `directory`, as float32 numpy arrays.

    Returns num_layers + 1 arrays [B, L, hidden]: [0] is the embedding output (after RemBERT's
    projection), [i] the output of layer i, [-1] the last hidden state. For XLM-R, pad the
    token ids with the config's pad_token_id: its position ids are derived from them.
    """
    model = transformers.AutoModel.from_pretrained(directory, attn_implementation="eager")
    model.eval()
    inputs = {
        "input_ids": torch.as_tensor(np.asarray(token_ids), dtype=torch.long),
        "attention_mask": torch.as_tensor(np.asarray(padding_mask), dtype=torch.long),
    }
    if segment_ids is not None:
        inputs["token_type_ids"] = torch.as_tensor(np.asarray(segment_ids), dtype=torch.long)
    with torch.no_grad():
        outputs = model(**inputs, output_hidden_states=True)
    return [h.numpy().astype(np.float32) for h in outputs.hidden_states]


def read_weights(directory):
    """The tensors of `directory`/model.safetensors as {key: np.ndarray}."""
    return safetensors.numpy.load_file(os.path.join(directory, "model.safetensors"))


def write_variant(source_directory, directory, tensors):
    """A copy of the checkpoint in `source_directory` whose weights are `tensors` (for tests
    of renamed, missing, extra or mis-shaped weights)."""
    os.makedirs(directory, exist_ok=True)
    shutil.copy(os.path.join(source_directory, "config.json"), directory)
    safetensors.numpy.save_file(tensors, os.path.join(directory, "model.safetensors"))
    return directory
