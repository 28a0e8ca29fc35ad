"""Recipe arithmetic: query-grouped folds (translations and repeated texts stay together), the
self-distillation targets against a hand computation, the pseudo-label threshold."""

import numpy as np
import pandas as pd
import pytest

from esci_tf.recipe import targets


def _frame():
    return pd.DataFrame({
        "query_id": [1, 1, 2, 3, 3, 4, 5, 6, 7, 8],
        "query": ["red shoe", "red shoe", "zapato rojo", "Red  Shoe", "Red  Shoe", "cap", "hat", "bag", "bag ", "pen"],
        "original_query_id": [None, None, 1, None, None, None, None, None, None, None],
        "product_locale": ["us", "us", "es", "us", "us", "us", "us", "us", "us", "us"],
    })


def test_translations_and_repeated_texts_share_a_group_and_a_fold():
    frame = _frame()
    groups = targets.query_groups(frame)
    # Query 2 translates query 1; query 3 repeats query 1's text; queries 6 and 7 repeat a text.
    assert groups.tolist() == [1, 1, 1, 1, 1, 4, 5, 6, 6, 8]
    folds = targets.assign_recipe_folds(frame, 3, seed=0)
    for group in set(groups.tolist()):
        assert len(set(folds[groups == group].tolist())) == 1
    assert set(folds.tolist()) == {0, 1, 2}


def test_distill_targets_match_a_hand_computation():
    oof = np.array([[0.6, 0.2, 0.1, 0.1], [np.nan] * 4, [0.25, 0.25, 0.25, 0.25]])
    got = targets.distill_targets([0, 2, 3], oof, hard_label_weight=0.7, label_smoothing=0.2)
    smooth = lambda k: np.eye(4)[k] * 0.8 + 0.05  # noqa: E731
    expected = np.stack([0.7 * smooth(0) + 0.3 * oof[0], smooth(2), 0.7 * smooth(3) + 0.3 * oof[2]])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="hard_label_weight"):
        targets.distill_targets([0], oof[:1], 1.5)
    with pytest.raises(ValueError, match="1 out-of-fold rows for 3 labels"):
        targets.distill_targets([0, 1, 2], oof[:1], 0.7)


def test_pseudo_labels_keep_confident_pairs_with_soft_targets():
    frame = pd.DataFrame({"example_id": [10, 11, 12, 13], "query_id": [1, 1, 2, 2], "label": [-1] * 4})
    probabilities = np.array([[0.8, 0.1, 0.05, 0.05], [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.71], [0.4] * 4])
    kept = targets.pseudo_labels(frame, probabilities, threshold=0.7)
    assert kept["example_id"].tolist() == [10, 12]  # 0.7 itself is not above the threshold
    assert kept["label"].tolist() == [0, 3] and kept["pseudo"].all()
    np.testing.assert_allclose(kept[list(targets.TARGET_COLUMNS)].to_numpy(), probabilities[[0, 2]], rtol=1e-6)
    with pytest.raises(ValueError, match="threshold"):
        targets.pseudo_labels(frame, probabilities, threshold=1.0)


def test_extra_rows_get_ids_past_the_training_frame():
    frame = pd.DataFrame({"example_id": [0, 1, 5], "query_id": [3, 3, 9]})
    extra = pd.DataFrame({"example_id": [0, 1, 2], "query_id": [3, 4, 3]})
    moved = targets.disjoint_ids(extra, frame)
    assert moved["example_id"].tolist() == [6, 7, 8] and moved["source_example_id"].tolist() == [0, 1, 2]
    assert moved["query_id"].tolist() == [10, 11, 10]  # still one query per original query


def _groups_row_by_row(frame):
    """query_groups as first written: every row's text normalised and united one row at a time."""
    from esci_tf.preprocessing.cleaning import normalize_keys

    groups = frame["query_id"].to_numpy(np.int64)
    source = pd.to_numeric(frame["original_query_id"], errors="coerce")
    groups = np.where(source.notna(), source.fillna(-1).astype(np.int64), groups)
    parent = {int(g): int(g) for g in np.unique(groups)}

    def find(g):
        while parent[g] != g:
            g = parent[g]
        return g

    owner = {}
    for group, text in zip(groups.tolist(), normalize_keys(frame["query"].tolist())):
        if text:
            a, b = find(group), find(owner.setdefault(text, group))
            parent[max(a, b)] = min(a, b)
    return np.array([find(g) for g in groups.tolist()], np.int64)


def test_query_groups_equal_uniting_row_by_row():
    rng = np.random.default_rng(0)
    texts = np.array(["red shoe", "Red  Shoe", "", "zapato rojo", "ｒｅｄ shoe", "<b>cap</b>", "cap", "bag", "pen"])
    query_ids = rng.integers(0, 300, 2000)
    frame = pd.DataFrame({"query_id": query_ids,
                          "query": np.where(rng.random(2000) < 0.9, [f"q{q}" for q in query_ids],
                                            texts[rng.integers(0, len(texts), 2000)]),
                          "original_query_id": np.where(rng.random(2000) < 0.1, query_ids // 2, None)})
    groups = targets.query_groups(frame)
    assert np.array_equal(groups, _groups_row_by_row(frame)) and len(np.unique(groups)) < len(np.unique(query_ids))
