"""Evaluation of a model on an eval set: per-pair predictions, then NDCG per query list.

The eval dataset is read pairwise (every pair once, in file order); predictions are then
grouped by query into padded lists, so each query's whole list is ranked whatever the batch
boundaries were. Reports carry both the model's NDCG and the random-order NDCG of the same
lists, overall and per locale, plus task-2 classification metrics.

An eval set of fewer than MIN_QUERIES queries cannot choose a run's best model (one or two
query lists: a single swapped pair moves the NDCG by a tenth or more, so the "best" step is
chance); `check_selection_size` refuses it with a line naming the flag that made it.
"""

import numpy as np
import pandas as pd

from esci_tf.inputs import MODEL_INPUT_KEYS
from esci_tf.labels import PROB_COLUMNS, ranking_score
from esci_tf.training import metrics
from esci_tf.training.config import ConfigError

ID_COLUMNS = ("example_id", "query_id", "product_id", "locale")
MIN_QUERIES = 3  # the fewest eval queries whose NDCG chooses a best model


def check_selection_size(num_queries: int, num_pairs: int, flag: str) -> None:
    """ConfigError naming `flag` when an eval set of `num_queries` queries is too small to choose
    the best model by NDCG (fewer than MIN_QUERIES)."""
    if num_queries < MIN_QUERIES:
        noun = "query" if num_queries == 1 else "queries"
        raise ConfigError(f"{flag}: the eval set holds {num_queries} {noun} ({num_pairs} pairs), too few for its "
                          f"NDCG to choose the best model (at least {MIN_QUERIES}); raise {flag} or give more queries")


def _as_str(values) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in ("S", "O"):
        return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values])
    return values


def predictions_frame(ids: dict, labels: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    """DataFrame of one row per pair: ids, hard label, class probabilities and ranking score."""
    frame = pd.DataFrame({key: _as_str(ids[key]) for key in ID_COLUMNS if key in ids})
    probs = np.asarray(probs, dtype=np.float32)
    labels = np.asarray(labels)
    # Soft/one-hot label vectors [N, 4] -> hard label (smoothing keeps the argmax).
    frame["label"] = labels.argmax(axis=-1) if labels.ndim == 2 else labels.astype(np.int64)
    for i, column in enumerate(PROB_COLUMNS):
        frame[column] = probs[:, i]
    frame["score"] = ranking_score(probs)
    return frame


def predict_dataset(model, dataset) -> pd.DataFrame:
    """Class probabilities of `model` (logits [B,4]) for every pair of a pairwise dataset.

    The dataset yields (features, labels [B,4]); features carry the model inputs and the id
    keys (query_id, product_id, locale, example_id), and its order must be deterministic: the
    model runs through Keras' predict (compiled, distributed) on the inputs only, and a second
    pass reads the ids and labels. Returns predictions_frame of every pair.
    """
    import keras

    spec = dataset.element_spec[0]
    missing = [k for k in ID_COLUMNS + MODEL_INPUT_KEYS if k not in spec]
    if missing:
        raise ValueError(f"eval dataset features lack {missing}; got {sorted(spec)}")
    inputs = dataset.map(lambda features, _labels: {k: features[k] for k in MODEL_INPUT_KEYS})
    logits = model.predict(inputs, verbose=0)
    probs = keras.ops.convert_to_numpy(
        keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1))
    ids = {key: [] for key in ID_COLUMNS}
    labels = []
    for features, batch_labels in dataset.map(
            lambda features, y: ({k: features[k] for k in ID_COLUMNS}, y)).as_numpy_iterator():
        labels.append(batch_labels)
        for key in ID_COLUMNS:
            ids[key].append(features[key].reshape(-1))
    if not labels:
        raise ValueError("eval dataset is empty")
    labels = np.concatenate(labels)
    if len(labels) != len(probs):
        raise ValueError(f"the eval dataset gave {len(probs)} predictions but {len(labels)} "
                         "labels: its order or size is not deterministic")
    return predictions_frame({k: np.concatenate(v) for k, v in ids.items()}, labels, probs)


def padded_lists(frame: pd.DataFrame, value_columns, group_column="query_id"):
    """Group rows by query (first-seen order, rows in file order) into [Q, N] arrays + mask."""
    groups = frame.groupby(group_column, sort=False).indices
    num_items = max(len(v) for v in groups.values())
    mask = np.zeros((len(groups), num_items), bool)
    arrays = {c: np.zeros((len(groups), num_items), np.float64) for c in value_columns}
    for row, positions in enumerate(groups.values()):
        positions = np.sort(positions)
        mask[row, : len(positions)] = True
        for column in value_columns:
            arrays[column][row, : len(positions)] = frame[column].to_numpy()[positions]
    return arrays, mask


def ranking_report(frame: pd.DataFrame) -> dict:
    """NDCG and random-order NDCG of the query lists in a predictions frame."""
    frame = frame.assign(gain=metrics.label_gains(frame["label"].to_numpy()))
    arrays, mask = padded_lists(frame, ("gain", "score"))
    result = metrics.ndcg(arrays["gain"], arrays["score"], mask)
    result["random_ndcg"] = metrics.random_ndcg(arrays["gain"], mask)
    result["num_pairs"] = int(len(frame))
    return result


def evaluate_predictions(frame: pd.DataFrame) -> dict:
    """Full report: ranking overall and per locale, and classification metrics."""
    if frame.empty:
        raise ValueError("no predictions to evaluate")
    report = ranking_report(frame)
    report.update(metrics.classification_metrics(
        frame["label"].to_numpy(), frame[list(PROB_COLUMNS)].to_numpy()))
    if "locale" in frame:
        report["per_locale"] = {
            str(locale): ranking_report(part)
            for locale, part in frame.groupby("locale", sort=True)
        }
    return report
