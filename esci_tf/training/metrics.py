"""Ranking and classification metrics of the ESCI tasks.

NDCG (task 1) uses the ESCI gains of labels.GAINS on the hard labels (E 1.0, S 0.1, C 0.01,
I 0.0) over each query's whole list, with the standard 1/log2(rank + 1) discount, computed by
keras_rs.metrics.NDCG with an identity gain function (the relevance given to it already is the
gain). Conventions, shared with the numpy reference in the tests:

- Ties in the predicted scores are broken by list order (the order of the pairs in the eval
  file), as a submission file sorted stably by score would rank them. keras-rs breaks ties
  randomly, so scores are turned into strict list ranks before they reach it.
- A query whose list has no positive gain (all Irrelevant) has an undefined NDCG (every order
  is ideal and no order has gain); it is left out of the mean and counted separately
  ("num_zero_gain_queries"). This is trec_eval's convention and the one behind the reference
  random-order NDCG (0.909) of the esci_sample README; counting such queries as 0, as
  keras-rs would by default, would measure the label mix rather than the ranker.
- Padded list positions (mask False) are ignored.

Random-order NDCG is the exact expectation over uniformly random orders of each list: every
item is equally likely at each rank, so E[DCG] = mean(gains) * sum of the list's discounts.
"""

import keras
import keras_rs
import numpy as np

from esci_tf.labels import GAINS, NUM_CLASSES


@keras.saving.register_keras_serializable(package="esci_tf")
def identity_gain(relevance):
    """Gain function for relevance values that already are gains."""
    return relevance


def label_gains(label_indices) -> np.ndarray:
    """ESCI gain of each hard label index (0..3)."""
    return GAINS[np.asarray(label_indices, dtype=np.int64)]


def strict_ranks(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[Q, N] float32 scores with no ties: N - rank, ties broken by list order, padding last."""
    scores = np.where(mask, np.asarray(scores, dtype=np.float64), -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")
    num_items = scores.shape[1]
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(num_items)[None, :].repeat(len(order), 0), axis=1)
    return (num_items - ranks).astype(np.float32)


def _positive_lists(gains: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (np.where(mask, gains, 0.0) > 0).any(axis=1)


def ndcg(gains: np.ndarray, scores: np.ndarray, mask: np.ndarray | None = None) -> dict:
    """Mean NDCG of padded lists [Q, N] (gains, model scores, validity mask) via keras-rs.

    Returns {"ndcg", "num_queries" (lists counted), "num_zero_gain_queries" (left out)};
    "ndcg" is NaN when no list has a positive gain.
    """
    gains = np.asarray(gains, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    mask = np.ones(gains.shape, bool) if mask is None else np.asarray(mask, bool)
    if gains.ndim != 2 or gains.shape != scores.shape or gains.shape != mask.shape:
        raise ValueError(
            f"gains, scores and mask must be [num_lists, list_size] of one shape; got "
            f"{gains.shape}, {scores.shape}, {mask.shape}"
        )
    counted = _positive_lists(gains, mask)
    result = {"num_queries": int(counted.sum()),
              "num_zero_gain_queries": int((mask.any(axis=1) & ~counted).sum())}
    if not counted.any():
        return {"ndcg": float("nan"), **result}
    metric = keras_rs.metrics.NDCG(gain_fn=identity_gain, shuffle_ties=False, seed=0)
    weights = (mask & counted[:, None]).astype(np.float32)
    metric.update_state(
        {"labels": np.where(mask, gains, -1.0), "mask": mask},
        strict_ranks(scores, mask),
        sample_weight=weights,
    )
    return {"ndcg": float(metric.result()), **result}


def ndcg_per_list(gains: np.ndarray, scores: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """NDCG of each padded list [Q, N] in numpy, the same conventions as `ndcg` (ties by list
    order, padding ignored); NaN for a list without a positive gain. Fast enough for searches
    over many score combinations; tests check it against the keras-rs metric."""
    gains = np.asarray(gains, np.float64)
    mask = np.ones(gains.shape, bool) if mask is None else np.asarray(mask, bool)
    gains = np.where(mask, gains, 0.0)
    num_items = gains.shape[1]
    discount = discounts(num_items)
    order = np.argsort(-strict_ranks(scores, mask), axis=1, kind="stable")
    dcg = (np.take_along_axis(gains, order, axis=1) * discount).sum(axis=1)
    ideal = (-np.sort(-gains, axis=1) * discount).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ideal > 0, dcg / ideal, np.nan)


def discounts(list_size: int) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..list_size."""
    return 1.0 / np.log2(np.arange(2, list_size + 2, dtype=np.float64))


def random_ndcg(gains: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Expected NDCG of a uniformly random order of each list (same lists as `ndcg`)."""
    gains = np.asarray(gains, dtype=np.float64)
    mask = np.ones(gains.shape, bool) if mask is None else np.asarray(mask, bool)
    values = []
    for row_gains, row_mask in zip(gains, mask):
        valid = np.sort(row_gains[row_mask])[::-1]
        if not (valid > 0).any():
            continue
        disc = discounts(len(valid))
        values.append(valid.mean() * disc.sum() / (valid * disc).sum())
    return float(np.mean(values)) if values else float("nan")


def classification_metrics(label_indices, probs) -> dict:
    """4-class accuracy and micro/macro F1 (task 2) of argmax predictions: Keras'
    CategoricalAccuracy and per-class F1Score; the macro mean is over the classes present in
    the labels or the predictions (an absent class has no defined F1)."""
    labels = np.asarray(label_indices, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float32)
    y_true = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    predicted = probs.argmax(axis=-1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    present = (confusion.sum(axis=1) + confusion.sum(axis=0)) > 0
    accuracy_metric = keras.metrics.CategoricalAccuracy()
    accuracy_metric.update_state(y_true, probs)
    f1_metric = keras.metrics.F1Score(average=None)
    f1_metric.update_state(y_true, probs)
    accuracy = float(accuracy_metric.result()) if len(labels) else 0.0
    f1_per_class = np.asarray(f1_metric.result(), np.float64)
    return {
        "accuracy": accuracy,
        # Single-label multi-class: micro F1 equals accuracy.
        "micro_f1": accuracy,
        "macro_f1": float(f1_per_class[present].mean()) if present.any() else 0.0,
        "f1_per_class": [float(v) for v in f1_per_class],
        "confusion": confusion.tolist(),
    }
