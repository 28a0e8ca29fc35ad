"""The recipe's data arithmetic: query-grouped folds, self-distillation targets, pseudo labels.

Folds: every row of a query group shares a fold. A group is a query with all its translations
(rows with the same `original_query_id`, the column trainers.translate writes; otherwise the
query_id) and every query whose normalised text equals it (the official data repeats a few
query texts under other ids). Folds are balanced by rows and by locale
(esci_tf.data.splits.assign_folds).

Self-distillation targets: hard_label_weight x the (optionally smoothed) one-hot label
+ (1 - hard_label_weight) x the out-of-fold class probabilities; rows without out-of-fold
probabilities keep the (smoothed) label.

Pseudo labels: pairs of an unlabeled set whose largest class probability exceeds the threshold,
labelled with their probabilities (soft).

>>> import numpy as np
>>> distill_targets(np.array([0, 3]), np.array([[0.5, 0.3, 0.1, 0.1], [np.nan] * 4]), 0.7)
array([[0.85, 0.09, 0.03, 0.03],
       [0.  , 0.  , 0.  , 1.  ]], dtype=float32)
"""

import numpy as np
import pandas as pd

from esci_tf.data.augmentation import ORIGINAL_QUERY_ID as TRANSLATION_SOURCE
from esci_tf.preprocessing.cleaning import normalize_keys
from esci_tf.data.splits import assign_folds
from esci_tf.labels import one_hot
from esci_tf.records.builder import TARGET_COLUMNS


def query_groups(frame: pd.DataFrame) -> np.ndarray:
    """The fold group of each row: its original query (translations join it), with groups that
    share a normalised query text merged (union-find), named by their smallest id."""
    groups = frame["query_id"].to_numpy(np.int64)
    if TRANSLATION_SOURCE in frame.columns:
        source = pd.to_numeric(frame[TRANSLATION_SOURCE], errors="coerce")
        groups = np.where(source.notna(), source.fillna(-1).astype(np.int64), groups)
    unique_groups, group_of_row = np.unique(groups, return_inverse=True)
    parent = {int(g): int(g) for g in unique_groups}

    def find(g):
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    # each distinct (group, text) once, each distinct text normalised once: the merged groups
    # do not depend on the order of the unions (a root is its component's smallest id)
    text_codes, texts = pd.factorize(frame["query"], use_na_sentinel=False)
    keys = normalize_keys(list(texts))
    pairs = pd.DataFrame({"group": groups, "text": text_codes}).drop_duplicates()
    owner = {}
    for group, code in zip(pairs["group"].tolist(), pairs["text"].tolist()):
        text = keys[code]
        if not text:
            continue
        other = owner.setdefault(text, group)
        a, b = find(group), find(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([find(int(g)) for g in unique_groups], np.int64)[group_of_row]


def assign_recipe_folds(frame: pd.DataFrame, num_folds: int, seed: int) -> np.ndarray:
    """int32 fold of each row (0..num_folds-1); all rows of a query group share one."""
    return assign_folds(frame.assign(query_id=query_groups(frame)), num_folds, seed)


def distill_targets(labels, oof_probabilities, hard_label_weight: float, label_smoothing: float = 0.0) -> np.ndarray:
    """[N, 4] targets: w x smoothed one-hot + (1 - w) x out-of-fold probabilities (NaN rows: the
    smoothed one-hot alone)."""
    if not 0.0 <= hard_label_weight <= 1.0:
        raise ValueError(f"hard_label_weight must be in [0, 1], got {hard_label_weight}")
    hard = one_hot(labels, label_smoothing).astype(np.float64)
    oof = np.asarray(oof_probabilities, np.float64)
    if oof.shape != hard.shape:
        raise ValueError(f"{oof.shape[0]} out-of-fold rows for {hard.shape[0]} labels")
    known = ~np.isnan(oof).any(axis=1)
    targets = hard.copy()
    targets[known] = hard_label_weight * hard[known] + (1.0 - hard_label_weight) * oof[known]
    return targets.astype(np.float32)


def with_targets(frame: pd.DataFrame, targets: np.ndarray) -> pd.DataFrame:
    """The frame with soft-label columns (esci_tf.records.builder.TARGET_COLUMNS) the builder writes."""
    targets = np.asarray(targets, np.float32)
    return frame.assign(**{column: targets[:, i] for i, column in enumerate(TARGET_COLUMNS)})


def disjoint_ids(extra: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """`extra` rows (e.g. pseudo labels of another file) with example and query ids moved past
    frame's, so training data never mixes two pairs or two queries under one id (their own ids
    stay in `source_example_id`)."""
    example_start = int(frame["example_id"].max()) + 1 if len(frame) else 0
    query_start = int(frame["query_id"].max()) + 1 if len(frame) else 0
    query_codes = pd.factorize(extra["query_id"])[0]
    return extra.assign(source_example_id=extra["example_id"].to_numpy(),
                        example_id=example_start + np.arange(len(extra), dtype=np.int64),
                        query_id=query_start + query_codes.astype(np.int64))


def pseudo_labels(frame: pd.DataFrame, probabilities: np.ndarray, threshold: float) -> pd.DataFrame:
    """The rows whose largest class probability exceeds `threshold`, with their probabilities as
    soft targets, the argmax as their label, and `pseudo` = True."""
    probabilities = np.asarray(probabilities, np.float32)
    if len(probabilities) != len(frame):
        raise ValueError(f"{len(probabilities)} probability rows for {len(frame)} pairs")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"pseudo threshold must be in (0, 1), got {threshold}")
    keep = probabilities.max(axis=1) > threshold
    return soft_labeled(frame[keep], probabilities[keep])


def soft_labeled(frame: pd.DataFrame, probabilities: np.ndarray) -> pd.DataFrame:
    """Every row with its probabilities as soft targets, the argmax as its label, and `pseudo` =
    True (pseudo_labels' rows; the distilled student's unlabeled pairs)."""
    probabilities = np.asarray(probabilities, np.float32)
    kept = with_targets(frame, probabilities)
    return kept.assign(label=probabilities.argmax(axis=1).astype(np.int64), pseudo=True).reset_index(drop=True)
