"""Rankers: whatever scores the (query, product) pairs of a merged ESCI frame.

A trained model directory (a trainers.fit --output_dir) loads as a CrossEncoderRanker; BM25,
zero-shot cosine, bags of fold models and weighted ensembles are rankers too, saved with a
ranker.json. trainers.predict and trainers.export take any ranker directory (`load_ranker`).
"""

from esci_tf.rankers.base import RANKER_FILE, ranker_kind
from esci_tf.rankers.registry import load_ranker
from esci_tf.rankers.cross_encoder import CrossEncoderRanker

__all__ = ["RANKER_FILE", "CrossEncoderRanker", "load_ranker", "ranker_kind"]
