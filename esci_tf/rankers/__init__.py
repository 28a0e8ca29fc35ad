"""Rankers: whatever scores the (query, product) pairs of a merged ESCI frame.

A trained model directory (a trainers.fit --output_dir) loads as a CrossEncoderRanker;
trainers.predict and trainers.export take any ranker directory through `load_ranker`.
"""

from esci_tf.rankers.cross_encoder import CrossEncoderRanker, load_ranker

__all__ = ["CrossEncoderRanker", "load_ranker"]
