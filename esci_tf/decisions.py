"""Tasks 2 and 3 of the KDD Cup 2022 from a ranker's class probabilities [N, 4] (class order E,
S, C, I: esci_tf.labels), with a decision rule fitted on out-of-fold pairs.

Task 2 labels each pair exact / substitute / complement / irrelevant, task 3 substitute /
no_substitute; both are scored by micro-averaged F1 over their classes. With one predicted and
one true class per pair, each wrong pair is one false positive (its predicted class) and one false
negative (its true class), so micro precision = micro recall = micro-F1 = accuracy, for the 4
classes of task 2 as for the 2 of task 3 (`micro_f1` counts them; the tests check the equality).

The rule (DecisionRule):
- task 2: the class k with the largest log p_k + o_k, o = log_offsets (o_E = 0; the same as
  multiplying p_k by the prior exp(o_k)); log p uses p clipped to 1e-12. Argmax is o = 0. Ties go
  to the earlier class in E, S, C, I order.
- task 3: "substitute" when p_S >= substitute_threshold; with no threshold (argmax), when S is the
  argmax class (o = 0, ties as above).

Fitting (`fit_decisions`, on pairs scored out of fold, with their true labels):
- task 2: a coordinate search over GRID (-3.0 to 3.0, step 0.1) for o_S, o_C, o_I from 0: each
  round visits the three in an order drawn from `seed` and moves each to the grid value that gets
  the most pairs right with the others fixed (ties: the value nearest the current one, then the
  smaller); rounds repeat until one changes nothing (at most MAX_ROUNDS).
- task 3: every cut between adjacent distinct p_S values (their midpoint; 0, and just above 1,
  for "all" and "none"), scanned exactly; the one with the most pairs right (ties: nearest 0.5,
  then the smaller).
- Each task keeps argmax unless its fitted rule gets strictly more of these pairs right (at least
  one more pair); so the rule is argmax when nothing beats it, and never worse on its own pairs.
- With the pairs' query ids (`fit_decisions`), each task also keeps argmax unless the fitting
  above, cross-validated over queries (each of 5 query-grouped folds decided by a rule fitted on
  the others), gets strictly more pairs right than argmax: a gain that exists only on the pairs
  the rule was fitted on is not kept.
The fit is deterministic: the same pairs, query ids and seed give the same rule.

>>> probabilities = [[0.55, 0.45, 0, 0]] * 3 + [[0.9, 0.1, 0, 0]] * 2  # 3 substitutes, 2 exacts
>>> fit = fit_decisions(probabilities, [1, 1, 1, 0, 0])
>>> fit.rule.describe()
'task 2: priors E x1, S x1.35, C x1, I x1; task 3: P(S) >= 0.275'
>>> fit.micro_f1["task2"], fit.micro_f1["task3"]
({'argmax': 0.4, 'fitted': 1.0}, {'argmax': 0.4, 'fitted': 1.0})
>>> submission_table([7, 8, 9, 10, 11], probabilities, fit.rule, "2")["esci_label"].tolist()
['substitute', 'substitute', 'substitute', 'exact', 'exact']
"""

import dataclasses
import math
import os

import numpy as np
import pandas as pd

from esci_tf import files
from esci_tf.errors import DataError
from esci_tf.labels import LABELS, NUM_CLASSES, SHORT_LABELS

DECISIONS_FILE = "decisions.json"
RULE_VERSION = 1  # bump when the rule or its fitting changes (a recipe's ensemble stage then refits)
TASKS = ("2", "3")
# The KDD Cup 2022 submission files: the competition's data and its baseline (amazon-science/
# esci-data, classification_identification/, as of April 2022) used these values; the released
# dataset's esci_label column uses E/S/C/I instead (esci_tf.labels.label_index reads both).
TASK2_COLUMN, TASK2_VALUES = "esci_label", LABELS
TASK3_COLUMN, SUBSTITUTE, NO_SUBSTITUTE = "substitute_label", "substitute", "no_substitute"
GRID = np.round(np.arange(-30, 31) / 10.0, 1)
MAX_ROUNDS = 20
_S = SHORT_LABELS.index("S")
_EPSILON = 1e-12


@dataclasses.dataclass(frozen=True)
class DecisionRule:
    """See the module docstring. The default is argmax for both tasks."""

    log_offsets: tuple = (0.0,) * NUM_CLASSES  # task 2, per class E, S, C, I
    substitute_threshold: float | None = None  # task 3; None: argmax

    @property
    def task2_is_argmax(self) -> bool:
        return not any(self.log_offsets)

    @property
    def task3_is_argmax(self) -> bool:
        return self.substitute_threshold is None

    def task2(self, probabilities) -> np.ndarray:
        """[N] class indices (0..3, E S C I)."""
        return _decide(_log(probabilities), np.asarray(self.log_offsets, np.float64))

    def task3(self, probabilities) -> np.ndarray:
        """[N] bool: substitute."""
        if self.substitute_threshold is None:
            return _decide(_log(probabilities), np.zeros(NUM_CLASSES)) == _S
        return np.asarray(probabilities, np.float64)[:, _S] >= self.substitute_threshold

    def describe(self) -> str:
        task2 = "argmax" if self.task2_is_argmax else "priors " + ", ".join(
            f"{s} x{math.exp(o):.3g}" for s, o in zip(SHORT_LABELS, self.log_offsets))
        task3 = "argmax" if self.task3_is_argmax else f"P(S) >= {self.substitute_threshold:.4g}"
        return f"task 2: {task2}; task 3: {task3}"

    def to_dict(self) -> dict:
        return {"task2": {"rule": "argmax" if self.task2_is_argmax else "priors",
                          "log_offsets": dict(zip(SHORT_LABELS, map(float, self.log_offsets)))},
                "task3": {"rule": "argmax" if self.task3_is_argmax else "threshold",
                          "substitute_threshold": self.substitute_threshold}}

    @classmethod
    def from_dict(cls, value: dict, path: str = DECISIONS_FILE) -> "DecisionRule":
        """The rule saved by to_dict; DataError naming `path` when it is not one."""
        try:
            offsets = tuple(float(value["task2"]["log_offsets"][s]) for s in SHORT_LABELS)
            threshold = value["task3"]["substitute_threshold"]
            threshold = None if threshold is None else float(threshold)
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"not a decision rule ({type(error).__name__}: {error})", path=path) from error
        if not all(math.isfinite(o) for o in offsets) or (threshold is not None and not math.isfinite(threshold)):
            raise DataError("the decision rule's offsets and threshold must be finite numbers", path=path)
        return cls(offsets, threshold)


@dataclasses.dataclass
class DecisionFit:
    """What fit_decisions chose, and the micro-F1 of argmax and of the rule on the pairs."""

    rule: DecisionRule
    micro_f1: dict  # {"task2"/"task3": {"argmax", "fitted", "fitted_cross_validated"}}, "pairs", "queries"

    def to_dict(self) -> dict:
        return {**self.rule.to_dict(), "out_of_fold": self.micro_f1}


def _log(probabilities) -> np.ndarray:
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.ndim != 2 or probabilities.shape[1] != NUM_CLASSES:
        raise ValueError(f"class probabilities must be [N, {NUM_CLASSES}], got {probabilities.shape}")
    return np.log(np.clip(probabilities, _EPSILON, None))


def _decide(log_probabilities: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.argmax(log_probabilities + offsets, axis=1)


def micro_f1(true, predicted, num_classes: int) -> float:
    """Micro-averaged F1 of single-label predictions over classes 0..num_classes-1, from the
    per-class true positive, false positive and false negative counts."""
    true, predicted = np.asarray(true), np.asarray(predicted)
    if not len(true):
        return float("nan")
    tp = fp = fn = 0
    for k in range(num_classes):
        tp += int(np.sum((predicted == k) & (true == k)))
        fp += int(np.sum((predicted == k) & (true != k)))
        fn += int(np.sum((predicted != k) & (true == k)))
    return 2 * tp / (2 * tp + fp + fn)


def task_micro_f1(probabilities, labels, rule: DecisionRule) -> dict:
    """{"task2": micro-F1, "task3": micro-F1} of `rule` on pairs with true class indices `labels`."""
    labels = np.asarray(labels)
    return {"task2": micro_f1(labels, rule.task2(probabilities), NUM_CLASSES),
            "task3": micro_f1(labels == _S, rule.task3(probabilities), 2)}


def _right_per_grid_value(log_probabilities, labels, offsets, k) -> np.ndarray:
    """[len(GRID)]: the pairs `_decide` gets right with o_k = each GRID value (the other offsets
    fixed), without deciding every pair once per value: a pair's decision is k from the first
    grid value where log p_k + o_k beats (or ties from an earlier class) its best other class j,
    and j below it (GRID ascends and the sum is monotone), so a binary search per pair finds
    that value; the counts are cumulative sums."""
    values = log_probabilities + offsets
    others = np.array([c for c in range(NUM_CLASSES) if c != k])
    best_other = others[np.argmax(values[:, others], axis=1)]  # argmax: the first of equal classes
    top = values[np.arange(len(values)), best_other]
    own = log_probabilities[:, k]
    low, high = np.zeros(len(own), np.int64), np.full(len(own), len(GRID))
    while (low < high).any():
        middle = (low + high) // 2
        mine = own + GRID[np.minimum(middle, len(GRID) - 1)]
        chosen = (mine > top) | ((mine == top) & (k < best_other))
        searching = low < high
        high = np.where(searching & chosen, middle, high)
        low = np.where(searching & ~chosen, middle + 1, low)
    turns = np.bincount(low[labels == k], minlength=len(GRID) + 1)[:len(GRID)].cumsum()
    leaves = np.bincount(low[labels == best_other], minlength=len(GRID) + 1)[:len(GRID)].cumsum()
    return turns + int(np.sum(labels == best_other)) - leaves


def _fit_offsets(log_probabilities, labels, seed: int) -> np.ndarray:
    offsets = np.zeros(NUM_CLASSES)
    rng = np.random.default_rng(seed)
    for _ in range(MAX_ROUNDS):
        moved = False
        for k in rng.permutation(np.arange(1, NUM_CLASSES)):
            right = _right_per_grid_value(log_probabilities, labels, offsets, k)
            best = np.flatnonzero(right == right.max())
            choice = GRID[min(best, key=lambda i: (abs(GRID[i] - offsets[k]), GRID[i]))]
            moved |= choice != offsets[k]
            offsets[k] = choice
        if not moved:
            break
    return offsets


def _fit_threshold(p_substitute, is_substitute) -> float:
    values = np.unique(np.concatenate([[0.0], p_substitute, [1.0]]))
    cuts = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [np.nextafter(1.0, 2.0)]])
    positives, negatives = np.sort(p_substitute[is_substitute]), np.sort(p_substitute[~is_substitute])
    right = (len(positives) - np.searchsorted(positives, cuts, "left")) + np.searchsorted(negatives, cuts, "left")
    best = np.flatnonzero(right == right.max())
    return float(cuts[min(best, key=lambda i: (abs(cuts[i] - 0.5), cuts[i]))])


def fit_rule(probabilities, labels, seed: int = 0) -> DecisionRule:
    """The rule of the module docstring fitted on these pairs (true class indices `labels`)."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels)
    log_probabilities = _log(probabilities)
    if len(labels) != len(log_probabilities) or not len(labels):
        raise ValueError(f"{len(log_probabilities)} probability rows for {len(labels)} labels")
    if np.isnan(log_probabilities).any():
        raise ValueError("class probabilities contain NaN: fit on the pairs that have out-of-fold scores")
    argmax = DecisionRule()
    offsets = _fit_offsets(log_probabilities, labels, seed)
    if np.sum(_decide(log_probabilities, offsets) == labels) <= np.sum(argmax.task2(probabilities) == labels):
        offsets = np.zeros(NUM_CLASSES)
    is_substitute = labels == _S
    threshold = _fit_threshold(probabilities[:, _S], is_substitute)
    fitted_right = np.sum((probabilities[:, _S] >= threshold) == is_substitute)
    if fitted_right <= np.sum(argmax.task3(probabilities) == is_substitute):
        threshold = None
    return DecisionRule(tuple(float(o) for o in offsets), threshold)


def _query_folds(query_ids, num_folds: int, seed: int) -> np.ndarray:
    unique, codes = np.unique(np.asarray(query_ids), return_inverse=True)
    fold_of_query = np.random.default_rng(seed).permutation(len(unique)) % num_folds
    return fold_of_query[codes]


def fit_decisions(probabilities, labels, query_ids=None, seed: int = 0, num_folds: int = 5) -> DecisionFit:
    """Fit the rule on out-of-fold pairs (`labels`: true class indices) and measure micro-F1 for
    tasks 2 and 3: "argmax"; with `query_ids` of at least 2 queries, "fitted_cross_validated":
    each of `num_folds` query-grouped folds (seeded) decided by a rule fitted on the other folds'
    pairs (a task whose figure does not beat argmax keeps argmax: the module docstring); and
    "fitted", the kept rule on the pairs it was fitted on (optimistic)."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels)
    rule = fit_rule(probabilities, labels, seed)
    result = {task: {"argmax": value} for task, value in task_micro_f1(probabilities, labels, DecisionRule()).items()}
    if query_ids is not None and len(np.unique(query_ids)) >= 2:
        folds = _query_folds(query_ids, min(num_folds, len(np.unique(query_ids))), seed)
        task2, task3 = np.zeros(len(labels), np.int64), np.zeros(len(labels), bool)
        for fold in np.unique(folds):
            held = folds == fold
            fold_rule = fit_rule(probabilities[~held], labels[~held], seed)
            task2[held], task3[held] = fold_rule.task2(probabilities[held]), fold_rule.task3(probabilities[held])
        result["task2"]["fitted_cross_validated"] = micro_f1(labels, task2, NUM_CLASSES)
        result["task3"]["fitted_cross_validated"] = micro_f1(labels == _S, task3, 2)
        if not result["task2"]["fitted_cross_validated"] > result["task2"]["argmax"]:
            rule = dataclasses.replace(rule, log_offsets=DecisionRule().log_offsets)
        if not result["task3"]["fitted_cross_validated"] > result["task3"]["argmax"]:
            rule = dataclasses.replace(rule, substitute_threshold=None)
    for task, value in task_micro_f1(probabilities, labels, rule).items():
        result[task]["fitted"] = value
    result["pairs"] = int(len(labels))
    if query_ids is not None:
        result["queries"] = int(len(np.unique(query_ids)))
    return DecisionFit(rule, result)


def save(directory: str, fitted: DecisionFit | DecisionRule) -> str:
    """Write `directory`/decisions.json (atomically); returns its path."""
    path = os.path.join(directory, DECISIONS_FILE)
    files.write_json(path, fitted.to_dict())
    return path


def load(directory: str) -> DecisionRule | None:
    """The rule in `directory`/decisions.json; None when there is none."""
    path = os.path.join(directory, DECISIONS_FILE)
    saved = files.read_json(path, missing_ok=True)
    if saved is None:
        return None
    if not isinstance(saved, dict):
        raise DataError("not a decision rule (expected a JSON object)", path=path)
    return DecisionRule.from_dict(saved, path)


def submission_table(example_ids, probabilities, rule: DecisionRule, task: str) -> pd.DataFrame:
    """The task-2 (example_id, esci_label) or task-3 (example_id, substitute_label) file's rows,
    in the order given."""
    if str(task) not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if str(task) == "2":
        labels = np.asarray(TASK2_VALUES)[rule.task2(probabilities)]
        return pd.DataFrame({"example_id": np.asarray(example_ids), TASK2_COLUMN: labels})
    labels = np.where(rule.task3(probabilities), SUBSTITUTE, NO_SUBSTITUTE)
    return pd.DataFrame({"example_id": np.asarray(example_ids), TASK3_COLUMN: labels})
