"""The ranker kinds: one table from the "kind" a ranker directory records to its class, and
loading any ranker directory by it (as esci_tf.models.registry does for backbone families).

A trainers.fit --output_dir (no ranker.json) is a "cross_encoder"; every other ranker directory's
ranker.json names its kind. Each class follows esci_tf.rankers.base.Ranker; a class is imported
only when a directory of its kind is loaded.

>>> sorted(RANKERS)
['bag', 'bi_encoder', 'bm25', 'cross_encoder', 'ensemble', 'zero_shot']
>>> ranker_class("bm25").__name__
'BM25Ranker'
"""

import importlib

from esci_tf.rankers.base import RANKER_FILE, ranker_kind

RANKERS = {  # kind -> "module:class"
    "cross_encoder": "esci_tf.rankers.cross_encoder:CrossEncoderRanker",
    "bm25": "esci_tf.rankers.bm25:BM25Ranker",
    "zero_shot": "esci_tf.rankers.zero_shot:ZeroShotRanker",
    "bi_encoder": "esci_tf.rankers.bi_encoder:BiEncoderRanker",
    "bag": "esci_tf.rankers.ensemble:BagRanker",
    "ensemble": "esci_tf.rankers.ensemble:EnsembleRanker",
}


def ranker_class(kind: str):
    """The class of ranker `kind`; ValueError naming the known kinds for another."""
    if kind not in RANKERS:
        raise ValueError(f"unknown ranker kind {kind!r}; known: {', '.join(sorted(RANKERS))}")
    module, _, name = RANKERS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def load_ranker(directory: str, batch_size: int = 128):
    """The ranker saved in `directory` (its `.directory` set to it); FileNotFoundError naming
    --model_dir when there is none."""
    kind = ranker_kind(directory)
    try:
        cls = ranker_class(kind)
    except ValueError as error:
        raise ValueError(f"{directory}/{RANKER_FILE}: {error}") from None
    ranker = cls.load(directory, batch_size)
    ranker.directory = directory
    return ranker
