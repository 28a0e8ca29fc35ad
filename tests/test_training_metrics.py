"""NDCG (keras-rs based) against an independent numpy implementation; F1; per-locale reports."""

import itertools

import numpy as np
import pandas as pd
import pytest

from esci_tf.training import evaluation, metrics


def numpy_ndcg(gains_lists, scores_lists):
    """Independent reference: plain loops, stable sort (ties by list order), zero-gain lists out."""
    values = []
    for gains, scores in zip(gains_lists, scores_lists):
        gains = [float(g) for g in gains]
        if max(gains) <= 0:
            continue
        order = sorted(range(len(gains)), key=lambda i: -scores[i])  # sorted() is stable
        dcg = sum(gains[i] / np.log2(rank + 2) for rank, i in enumerate(order))
        ideal = sum(g / np.log2(rank + 2) for rank, g in enumerate(sorted(gains, reverse=True)))
        values.append(dcg / ideal)
    return float(np.mean(values))


def pad(lists, fill=0.0):
    size = max(len(x) for x in lists)
    out = np.full((len(lists), size), fill, np.float32)
    mask = np.zeros((len(lists), size), bool)
    for i, x in enumerate(lists):
        out[i, : len(x)] = x
        mask[i, : len(x)] = True
    return out, mask


HAND_LISTS = [  # (labels E/S/C/I as indices, scores)
    ([0, 1, 2, 3], [0.9, 0.5, 0.2, 0.1]),          # perfect
    ([3, 2, 1, 0], [0.9, 0.5, 0.2, 0.1]),          # reversed
    ([1, 0, 3, 0, 2], [0.5, 0.5, 0.5, 0.1, 0.7]),  # ties between different labels
    ([0, 3], [0.3, 0.3]),                          # all tied
    ([3, 3, 3], [0.1, 0.2, 0.3]),                  # all-zero gains: left out
    ([2], [0.4]),                                  # single item
    ([1, 2, 0, 0, 3, 1, 2], [0.1, 0.9, 0.8, 0.05, 0.7, 0.6, 0.6]),
]


def test_ndcg_matches_numpy_reference_with_ties_zero_gain_and_padding():
    gains = [metrics.label_gains(labels) for labels, _ in HAND_LISTS]
    scores = [s for _, s in HAND_LISTS]
    gains_pad, mask = pad(gains)
    scores_pad, _ = pad(scores, fill=99.0)  # padding must not count even with a high score
    result = metrics.ndcg(gains_pad, scores_pad, mask)
    assert result["ndcg"] == pytest.approx(numpy_ndcg(gains, scores), abs=1e-6)
    assert result["num_queries"] == 6
    assert result["num_zero_gain_queries"] == 1


def test_ndcg_hand_values():
    perfect = metrics.ndcg(*[np.array([x]) for x in ([1.0, 0.1, 0.0], [3.0, 2.0, 1.0])])
    assert perfect["ndcg"] == pytest.approx(1.0)
    # [0.1, 1.0]: DCG = 0.1 + 1/log2(3); IDCG = 1 + 0.1/log2(3).
    swapped = metrics.ndcg(np.array([[0.1, 1.0]]), np.array([[2.0, 1.0]]))
    expected = (0.1 + 1 / np.log2(3)) / (1 + 0.1 / np.log2(3))
    assert swapped["ndcg"] == pytest.approx(expected, rel=1e-6)
    # A tie is broken by list order: the first item ranks first.
    tied = metrics.ndcg(np.array([[0.1, 1.0]]), np.array([[0.5, 0.5]]))
    assert tied["ndcg"] == pytest.approx(expected, rel=1e-6)


def test_all_lists_zero_gain_gives_nan():
    result = metrics.ndcg(np.zeros((2, 3)), np.ones((2, 3)))
    assert np.isnan(result["ndcg"]) and result["num_zero_gain_queries"] == 2


def test_ndcg_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        metrics.ndcg(np.zeros((2, 3)), np.zeros((2, 4)))


def test_random_ndcg_is_the_mean_over_all_orders():
    gains = [metrics.label_gains(labels) for labels, _ in HAND_LISTS if len(labels) <= 5]
    exhaustive = []
    for g in gains:
        if g.max() <= 0:
            continue
        orders = list(itertools.permutations(range(len(g))))
        exhaustive.append(np.mean([
            numpy_ndcg([g], [[-order.index(i) for i in range(len(g))]]) for order in orders
        ]))
    gains_pad, mask = pad(gains)
    assert metrics.random_ndcg(gains_pad, mask) == pytest.approx(np.mean(exhaustive), abs=1e-9)


def test_classification_metrics_match_hand_counts():
    labels = np.array([0, 0, 1, 2, 3, 3])
    probs = np.eye(4)[[0, 1, 1, 3, 3, 3]]
    result = metrics.classification_metrics(labels, probs)
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["micro_f1"] == pytest.approx(4 / 6)
    # per class F1: E 2/3, S 2/3, C 0, I 0.8
    assert result["f1_per_class"] == pytest.approx([2 / 3, 2 / 3, 0.0, 0.8])
    assert result["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 0 + 0.8) / 4)


def test_evaluate_predictions_overall_and_per_locale():
    rng = np.random.default_rng(0)
    rows = []
    for query in range(12):
        locale = ["us", "es", "jp"][query % 3]
        for item in range(rng.integers(1, 6)):
            rows.append((f"q{query}", f"p{query}_{item}", locale, int(rng.integers(0, 4))))
    frame = pd.DataFrame(rows, columns=["query_id", "product_id", "locale", "label"])
    frame["example_id"] = np.arange(len(frame))
    probs = rng.dirichlet(np.ones(4), size=len(frame))
    preds = evaluation.predictions_frame(
        {k: frame[k].to_numpy() for k in evaluation.ID_COLUMNS}, frame["label"].to_numpy(), probs)
    report = evaluation.evaluate_predictions(preds)

    def reference(part):
        groups = [g for _, g in part.groupby("query_id", sort=False)]
        return numpy_ndcg([metrics.label_gains(g["label"]) for g in groups],
                          [list(g["score"]) for g in groups])

    assert report["ndcg"] == pytest.approx(reference(preds), abs=1e-6)
    assert set(report["per_locale"]) == {"us", "es", "jp"}
    for locale, sub in report["per_locale"].items():
        assert sub["ndcg"] == pytest.approx(reference(preds[preds.locale == locale]), abs=1e-6)
        assert 0 < sub["random_ndcg"] <= 1
    assert report["num_pairs"] == len(frame)
    assert report["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == frame["label"]))


def test_reference_random_ndcg_on_real_sample(esci_sample_dir):
    """The README of the real sample gives random-order NDCG 0.909 with our conventions."""
    examples = pd.read_parquet(esci_sample_dir / "examples.parquet")
    from esci_tf.labels import label_index

    frame = pd.DataFrame({
        "query_id": examples["query_id"], "label": examples["esci_label"].map(label_index)})
    frame = frame.assign(gain=metrics.label_gains(frame["label"]))
    arrays, mask = evaluation.padded_lists(frame, ("gain",))
    assert metrics.random_ndcg(arrays["gain"], mask) == pytest.approx(0.909, abs=5e-4)


def test_predict_dataset_pairs_ids_with_model_probabilities():
    import keras
    import tensorflow as tf

    class SumModel(keras.Model):
        """logits = [sum(token_ids), 0, 0, 0]: a known function of each pair."""

        def call(self, inputs):
            total = keras.ops.sum(keras.ops.cast(inputs["token_ids"], "float32"), axis=1)
            return keras.ops.stack([total, total * 0, total * 0, total * 0], axis=1)

    n, length = 7, 3
    token_ids = np.arange(n * length, dtype=np.int32).reshape(n, length) % 3
    features = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
                "padding_mask": np.ones_like(token_ids),
                "example_id": np.arange(n), "query_id": np.array([5, 5, 5, 6, 6, 7, 7]),
                "product_id": np.array([f"p{i}" for i in range(n)]),
                "locale": np.array(["us"] * 5 + ["jp"] * 2)}
    labels = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 1, 2]]
    dataset = tf.data.Dataset.from_tensor_slices((features, labels)).batch(3)
    frame = evaluation.predict_dataset(SumModel(), dataset)
    totals = token_ids.sum(axis=1).astype(np.float64)
    p_exact = np.exp(totals) / (np.exp(totals) + 3)
    np.testing.assert_allclose(frame["p_E"], p_exact, rtol=1e-5)
    assert frame["product_id"].tolist() == [f"p{i}" for i in range(n)]
    assert frame["label"].tolist() == [0, 1, 2, 3, 0, 1, 2]
    assert frame["locale"].tolist() == ["us"] * 5 + ["jp"] * 2
