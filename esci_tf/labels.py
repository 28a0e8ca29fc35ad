"""ESCI classes, their ranking gains and soft-label vectors.

The class order is fixed everywhere in the project (TFRecords, logits, predictions):
index 0 = Exact, 1 = Substitute, 2 = Complement, 3 = Irrelevant.
"""

import numpy as np

LABELS = ("exact", "substitute", "complement", "irrelevant")
SHORT_LABELS = ("E", "S", "C", "I")
PROB_COLUMNS = tuple(f"p_{s}" for s in SHORT_LABELS)  # the class probabilities in prediction tables
NUM_CLASSES = len(LABELS)

# Ranking gains of the KDD Cup 2022 task 1 (and of the paper's score):
# score = P(E) * 1.0 + P(S) * 0.1 + P(C) * 0.01 + P(I) * 0.0
GAINS = np.array([1.0, 0.1, 0.01, 0.0], dtype=np.float32)

# Accept the official long names ("Exact") and the short letters ("E").
_LABEL_INDEX = {name: i for i, name in enumerate(LABELS)}
_LABEL_INDEX.update({s.lower(): i for i, s in enumerate(SHORT_LABELS)})


def label_index(label: str) -> int:
    """Index of an ESCI label, given as "Exact"/"exact"/"E" etc. Raises KeyError if unknown."""
    key = str(label).strip().lower()
    if key not in _LABEL_INDEX:
        raise KeyError(f"unknown ESCI label {label!r}; expected one of {', '.join(SHORT_LABELS)}")
    return _LABEL_INDEX[key]


def is_known_label(label) -> bool:
    return isinstance(label, str) and label.strip().lower() in _LABEL_INDEX


def one_hot(indices, label_smoothing: float = 0.0) -> np.ndarray:
    """[N, 4] float32 soft labels: one-hot, optionally smoothed as (1 - a) * y + a / K."""
    y = np.eye(NUM_CLASSES, dtype=np.float32)[np.asarray(indices, dtype=np.int64)]
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / NUM_CLASSES
    return y.astype(np.float32)


def softmax(logits) -> np.ndarray:
    """float32 class probabilities of [..., 4] logits (softmax over the last axis, computed
    stably in float64)."""
    values = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def ranking_score(values, from_logits: bool = False) -> np.ndarray:
    """Expected gain P(E) * 1 + P(S) * 0.1 + P(C) * 0.01 of each row of [..., 4] class
    probabilities (or logits, with from_logits: softmax first, computed stably in float64).

    >>> [round(float(s), 4) for s in ranking_score([[0.0, 1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5]])]
    [0.1, 0.5]
    >>> [round(float(s), 4) for s in ranking_score([[0.0, 0.0, 0.0, 0.0]], from_logits=True)]
    [0.2775]
    """
    values = softmax(values) if from_logits else np.asarray(values, dtype=np.float32)
    return values @ GAINS
