"""Grow a backbone's token embedding table to hold the special tokens.

Special token `i` gets id `base_vocabulary_size + i` (esci_tf.special_tokens.special_token_id),
where `base_vocabulary_size` is the tokenizer's vocabulary size. The backbone is rebuilt from
its config with `vocabulary_size` large enough for those ids and every weight is copied; the
rows of the special tokens start at the mean of the tokenizer's rows (plus optional noise).
Rows `[0, base_vocabulary_size)` stay bit-exact. A table already larger than the tokenizer's
vocabulary (e.g. DeBERTa-v3: 128100 rows for 128001 tokens) is only grown as far as needed, and
its unused rows that the special tokens take over are re-initialised the same way. Any other
variable whose shape follows the vocabulary (an untied output embedding) is grown alike.

Example:
>>> import keras_hub
>>> bb = keras_hub.models.XLMRobertaBackbone(vocabulary_size=100, num_layers=1, num_heads=2,
...     hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
>>> grow_vocabulary(bb, 5).vocabulary_size
105
"""

import numpy as np

from esci_tf.models import registry


def _grown_table(old, axis, base, num_new, new_size, noise_stddev, rng):
    """Copy `old` into a table of `new_size` along `axis`; rows [base, base + num_new) get
    the mean of rows [0, base) (+ noise). new_size <= base + num_new or new_size == old size,
    so these are all the rows that did not exist before."""
    old = np.moveaxis(old, axis, 0)
    table = np.empty((new_size,) + old.shape[1:], dtype=old.dtype)
    table[: old.shape[0]] = old
    mean = old[:base].astype(np.float64).mean(axis=0)
    new_rows = np.broadcast_to(mean, (num_new,) + old.shape[1:]).copy()
    if noise_stddev:
        new_rows += rng.normal(0.0, noise_stddev, size=new_rows.shape)
    table[base : base + num_new] = new_rows.astype(old.dtype)
    return np.moveaxis(table, 0, axis)


def grow_vocabulary(
    backbone,
    num_new_tokens: int,
    base_vocabulary_size: int | None = None,
    noise_stddev: float = 0.0,
    seed: int = 0,
):
    """A copy of `backbone` whose embedding table holds ids up to base + num_new_tokens - 1.

    `base_vocabulary_size` is the tokenizer's vocabulary size (default: the backbone's
    `vocabulary_size`). Returns the backbone unchanged when `num_new_tokens` is 0.
    """
    if num_new_tokens < 0:
        raise ValueError(f"num_new_tokens must be >= 0, got {num_new_tokens}")
    if num_new_tokens == 0:
        return backbone
    old_size = backbone.vocabulary_size
    base = old_size if base_vocabulary_size is None else int(base_vocabulary_size)
    if not 0 < base <= old_size:
        raise ValueError(
            f"base_vocabulary_size {base} must be in [1, {old_size}] (the backbone's "
            f"vocabulary_size); the tokenizer cannot be larger than the embedding table"
        )
    new_size = max(old_size, base + num_new_tokens)

    config = backbone.get_config()
    config["vocabulary_size"] = new_size
    grown = type(backbone).from_config(config)

    old_weights, new_weights = backbone.weights, grown.weights
    if [w.path for w in old_weights] != [w.path for w in new_weights]:
        raise ValueError(
            f"rebuilding {type(backbone).__name__} with vocabulary_size={new_size} gave "
            f"different variables; cannot copy weights"
        )
    rng = np.random.default_rng(seed)
    word_embeddings = registry.entry_for_backbone(backbone).word_embeddings(backbone)
    for old_var, new_var in zip(old_weights, new_weights):
        value = np.asarray(old_var.numpy())
        if tuple(old_var.shape) != tuple(new_var.shape):
            axes = [
                i for i, (a, b) in enumerate(zip(old_var.shape, new_var.shape))
                if a != b
            ]
            if (
                len(old_var.shape) != len(new_var.shape)
                or len(axes) != 1
                or old_var.shape[axes[0]] != old_size
                or new_var.shape[axes[0]] != new_size
            ):
                raise ValueError(
                    f"variable {old_var.path} changed shape {tuple(old_var.shape)} -> "
                    f"{tuple(new_var.shape)} when growing the vocabulary {old_size} -> "
                    f"{new_size}; only vocabulary-sized axes may change"
                )
            value = _grown_table(value, axes[0], base, num_new_tokens, new_size, noise_stddev, rng)
        elif old_var is word_embeddings:
            # The table is big enough already: re-initialise the rows the special tokens take.
            value = _grown_table(value, 0, base, num_new_tokens, new_size, noise_stddev, rng)
        new_var.assign(value)
    return grown
