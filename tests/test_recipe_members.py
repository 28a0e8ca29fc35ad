"""Whether R/final gives class probabilities (tasks 2 and 3 need them): from its weighted members,
or from its classifier member where none of them classifies (esci_tf.rankers.base.classifies)."""

import numpy as np

from esci_tf.rankers.base import classifies
from esci_tf.rankers.bm25 import BM25Ranker
from esci_tf.rankers.ensemble import EnsembleRanker


class _Classifier:
    """A stand-in ranker with class probabilities."""

    def probabilities(self, frame):
        return np.full((len(frame), 4), 0.25)


def test_the_classifier_member_gives_probabilities_where_no_weighted_member_classifies(tmp_path):
    import pandas as pd

    bm25 = BM25Ranker.fit(["red shoe", "blue shoe", "red cap"])
    frame = pd.DataFrame({"query": ["red shoe"] * 3, "product_title": ["red shoe", "red cap", "blue shoe"],
                          "product_locale": ["us"] * 3})
    norms = {"bm25": (0.5, 0.25), "ce": (0.0, 1.0)}
    alone = EnsembleRanker({"bm25": bm25}, {"all": {"bm25": 1.0}}, {"bm25": (0.5, 0.25)}).predict(frame)
    assert alone.probabilities is None  # the weights chose BM25 alone: no class probabilities
    kept = EnsembleRanker({"bm25": bm25, "ce": _Classifier()}, {"all": {"bm25": 1.0}}, norms, classifier="ce")
    assert classifies(kept) and kept.used_members() == ["bm25", "ce"]
    prediction = kept.predict(frame)
    np.testing.assert_array_equal(prediction.scores, alone.scores)  # its weight stays 0
    np.testing.assert_array_equal(prediction.probabilities, np.full((3, 4), 0.25))
    # Saved and loaded with it (BM25 stands in for the member's directory here).
    bm25.save(str(tmp_path / "members" / "bm25"))
    bm25.save(str(tmp_path / "members" / "ce"))
    EnsembleRanker.save(str(tmp_path), {"bm25": "members/bm25", "ce": "members/ce"}, {"all": {"bm25": 1.0}},
                        norms, classifier="ce")
    assert EnsembleRanker.load(str(tmp_path)).classifier == "ce"


def test_an_ensemble_classifies_when_every_group_weights_a_member_that_does():
    bm25 = BM25Ranker.fit(["red shoe"])
    members = {"bm25": bm25, "ce": _Classifier()}
    norms = {"bm25": (0.0, 1.0), "ce": (0.0, 1.0)}
    assert classifies(_Classifier()) and not classifies(bm25)
    assert classifies(EnsembleRanker(members, {"all": {"bm25": 0.5, "ce": 0.5}}, norms))
    assert not classifies(EnsembleRanker(members, {"all": {"bm25": 1.0, "ce": 0.0}}, norms))
    assert not classifies(EnsembleRanker(members, {"all": {"ce": 1.0}, "es": {"bm25": 1.0}}, norms))
