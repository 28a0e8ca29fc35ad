"""Whether R/final gives class probabilities (tasks 2 and 3 need them): from the recipe's
weights, and from a loaded ensemble (esci_tf.rankers.base.classifies)."""

import numpy as np

from esci_tf.rankers.base import classifies
from esci_tf.rankers.bm25 import BM25Ranker
from esci_tf.rankers.ensemble import EnsembleRanker
from esci_tf.recipe.members import weights_a_classifier


class _Classifier:
    """A stand-in ranker with class probabilities."""

    def probabilities(self, frame):
        return np.full((len(frame), 4), 0.25)


def test_final_gives_class_probabilities_only_when_every_group_weights_a_classifier():
    assert weights_a_classifier({"all": {"cross_encoder": 0.6, "bm25": 0.4}})
    assert weights_a_classifier({"all": {"dir:runs/a": 1.0}})
    assert not weights_a_classifier({"all": {"bi_encoder": 1.0}})  # the best member alone
    assert not weights_a_classifier({"all": {"cross_encoder": 0.0, "bm25": 1.0}})
    assert not weights_a_classifier({"all": {"cross_encoder": 1.0}, "jp": {"bm25": 1.0}})


def test_an_ensemble_classifies_when_every_group_weights_a_member_that_does():
    bm25 = BM25Ranker.fit(["red shoe"])
    members = {"bm25": bm25, "ce": _Classifier()}
    norms = {"bm25": (0.0, 1.0), "ce": (0.0, 1.0)}
    assert classifies(_Classifier()) and not classifies(bm25)
    assert classifies(EnsembleRanker(members, {"all": {"bm25": 0.5, "ce": 0.5}}, norms))
    assert not classifies(EnsembleRanker(members, {"all": {"bm25": 1.0, "ce": 0.0}}, norms))
    assert not classifies(EnsembleRanker(members, {"all": {"ce": 1.0}, "es": {"bm25": 1.0}}, norms))
