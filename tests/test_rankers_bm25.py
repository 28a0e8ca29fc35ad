"""BM25Ranker: the hand computation, cleaning, the TF graph's scores equal the numpy ones, saving."""

import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from esci_tf.rankers.bm25 import BM25Ranker


def test_bm25_hand_case():
    corpus = ["red shoe", "blue shoe shoe", "red hat"]
    ranker = BM25Ranker.fit(corpus, k1=1.5, b=0.75)
    scores = ranker.score_texts(["red shoe"] * 3, corpus)
    n, avg = 3, 7 / 3

    def term(df, tf, length):
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * tf * 2.5 / (tf + 1.5 * (0.25 + 0.75 * length / avg))

    want = [term(2, 1, 2) + term(2, 1, 2), term(2, 2, 3), term(2, 1, 2)]
    np.testing.assert_allclose(scores, want, rtol=1e-12)
    assert scores[0] > scores[2] and scores[1] > scores[2]
    assert ranker.score_texts(["Shoe!"], ["SHOE"])[0] > 0  # case and punctuation
    with pytest.raises(ValueError, match="2 queries but 1"):
        ranker.score_texts(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="non-empty corpus"):
        BM25Ranker.fit([])


def test_frame_scores_clean_html_and_the_tf_graph_agrees(tmp_path):
    titles = ["Red <b>Running</b> Shoe", "Blue shoe, shoe", "Café noir 12mm_x", "日本語 テスト 靴", "", "red cap"]
    ranker = BM25Ranker.fit(titles)
    frame = pd.DataFrame({"query": ["red shoe", "shoe shoe", "café 12MM_X", "テスト", "anything", "RED  cap!"],
                          "product_title": titles})
    scores = ranker.scores(frame)
    assert scores[0] > 0 and scores[4] == 0
    from esci_tf.preprocessing.cleaning import clean_text

    graph = ranker.tf_scores(tf.constant([clean_text(q) for q in frame["query"]]),
                             tf.constant([clean_text(t) for t in frame["product_title"]])).numpy()
    np.testing.assert_allclose(graph, scores, rtol=1e-5, atol=1e-6)
    ranker.save(str(tmp_path))
    np.testing.assert_array_equal(BM25Ranker.load(str(tmp_path)).scores(frame), scores)


@pytest.mark.slow
def test_tf_graph_matches_on_the_real_sample(esci_sample_dir):
    from esci_tf.preprocessing.cleaning import clean_text
    from esci_tf.data.reader import load_esci

    frame, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet", task="all")
    ranker = BM25Ranker.fit_catalog(frame)
    numpy_scores = ranker.scores(frame)
    graph = ranker.tf_scores(tf.constant([clean_text(q) for q in frame["query"]]),
                             tf.constant([clean_text(t) for t in frame["product_title"]])).numpy()
    np.testing.assert_allclose(graph, numpy_scores, rtol=1e-5, atol=1e-5)
