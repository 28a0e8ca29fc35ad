"""Shared test settings for CrossEncoder tests: the tiny random BERT every logic test builds."""

# 2 layers, hidden 32: fast enough for logic tests on 2 CPU cores.
TINY_BERT = dict(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
                 max_sequence_length=32)
