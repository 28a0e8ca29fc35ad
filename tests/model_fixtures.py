"""Shared test settings for CrossEncoder tests: the tiny random BERT every logic test builds."""

import numpy as np

# 2 layers, hidden 32: fast enough for logic tests on 2 CPU cores.
TINY_BERT = dict(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
                 max_sequence_length=32)


def tiny_bert_batch():
    """Two 10-token pairs for TINY_BERT: query in segment 0, the second pair padded by 3."""
    return {"token_ids": np.arange(20, dtype="int32").reshape(2, 10) % 90 + 5,
            "segment_ids": np.array([[0] * 4 + [1] * 6] * 2, "int32"),
            "padding_mask": np.array([[1] * 10, [1] * 7 + [0] * 3], "int32")}
