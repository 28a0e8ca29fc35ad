"""Ranker directories: what `load_ranker` finds in a model directory.

A ranker scores the (query, product) pairs of a merged ESCI frame (esci_tf.data.reader.load_esci):
`scores(frame)` -> [N] (higher ranks first), and `probabilities(frame)` -> [N, 4] for rankers that
classify. A trainers.fit --output_dir is a cross-encoder ranker (best_model.keras +
preprocessing.json); every other ranker directory holds a ranker.json whose "kind" names its class
(bm25, zero_shot, bi_encoder, bag, ensemble), so trainers.predict and trainers.export take any of them.
"""

import dataclasses
import os

import numpy as np

from esci_tf import files
from esci_tf.labels import ranking_score

RANKER_FILE = "ranker.json"


@dataclasses.dataclass
class Prediction:
    """A ranker's output for a frame: scores [N] and, when it classifies, probabilities [N, 4]."""

    scores: np.ndarray
    probabilities: np.ndarray | None = None


def predict(ranker, frame) -> Prediction:
    """Scores and (if any) class probabilities of any ranker."""
    if hasattr(ranker, "predict"):  # bags and ensembles
        return ranker.predict(frame)
    if hasattr(ranker, "probabilities"):
        probabilities = ranker.probabilities(frame)
        return Prediction(ranking_score(probabilities), probabilities)
    return Prediction(np.asarray(ranker.scores(frame), np.float64))


def classifies(ranker) -> bool:
    """Whether `ranker` gives class probabilities for every pair: a ranker with `probabilities`,
    or one whose `classifies` says so (bags, ensembles)."""
    flag = getattr(ranker, "classifies", None)
    return bool(flag) if flag is not None else hasattr(ranker, "probabilities")


def ranker_kind(directory: str) -> str:
    """The kind of ranker saved in `directory` ("cross_encoder" for a trainers.fit run)."""
    saved = files.read_json(os.path.join(directory, RANKER_FILE), missing_ok=True)
    return "cross_encoder" if saved is None else saved["kind"]


def load_ranker(directory: str, batch_size: int = 128):
    """The ranker saved in `directory`; FileNotFoundError naming --model_dir when there is none."""
    kind = ranker_kind(directory)
    if kind == "cross_encoder":
        from esci_tf.rankers.cross_encoder import CrossEncoderRanker

        return CrossEncoderRanker.load(directory, batch_size)
    if kind == "bm25":
        from esci_tf.rankers.bm25 import BM25Ranker

        return BM25Ranker.load(directory)
    if kind == "zero_shot":
        from esci_tf.rankers.zero_shot import ZeroShotRanker

        return ZeroShotRanker.load(directory, batch_size)
    if kind == "bi_encoder":
        from esci_tf.rankers.bi_encoder import BiEncoderRanker

        return BiEncoderRanker.load(directory, batch_size)
    if kind in ("bag", "ensemble"):
        from esci_tf.rankers.ensemble import BagRanker, EnsembleRanker

        return (BagRanker if kind == "bag" else EnsembleRanker).load(directory, batch_size)
    raise ValueError(f"{directory}/{RANKER_FILE}: unknown ranker kind {kind!r}")
