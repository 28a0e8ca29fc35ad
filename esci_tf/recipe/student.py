"""The distilled student (trainers.recipe --student_layers=N): a smaller cross-encoder for cheap serving.

Teacher: the recipe's last cross-encoder stage (pseudo, else distill, else folds), the one R/final's
cross_encoder member bags. Its soft labels: on the labeled pairs, the out-of-fold class
probabilities of the last stage that has them (esci_tf.recipe.members.oof_stage; no pair gets a
probability from a model that trained on it), the (smoothed) label where no stage has one; on the
unlabeled pairs (--pseudo_examples), every one of them, the teacher's bag's probabilities. The
student's loss is the fine-tunes' soft-label cross-entropy on these targets alone (the paper's
distillation; no hard-label share), for --student_epochs passes (else as the fine-tunes train).

Student: N of the backbone's layers initialised from the pretrained checkpoint the teacher started
from (--keep_layers=N: esci_tf.models.layer_selection), one per trained fold, trained on the other
folds' pairs (+ the unlabeled pairs and the translations) and evaluated on its fold: its
out-of-fold NDCG is paired with the teacher's on the same queries (the report's paired bootstrap).
The soft labels of the other folds' pairs come from teacher models that trained on this fold's
labels, as for --distill_on=folds, so the student's number leans a little optimistic. R/student is
the bag of the fold students (a ranker directory trainers.predict and trainers.export take);
R/final stays the teacher's, so a user serves either.

Speed: the student's bag and the teacher's bag score the same pairs (the first SPEED_PAIRS labeled
pairs) in the same process, each once to warm up and then SPEED_REPEATS times; the best of those,
in pairs per second, on this CPU (esci_tf.cpu.cpu_kind).

>>> import numpy as np
>>> student_targets(np.array([0, 3]), np.array([[0.5, 0.3, 0.1, 0.1], [np.nan] * 4]), 0.0)
array([[0.5, 0.3, 0.1, 0.1],
       [0. , 0. , 0. , 1. ]], dtype=float32)
"""

import time

import numpy as np

from esci_tf.recipe.targets import distill_targets

STAGE = "student"
SPEED_PAIRS = 512
SPEED_REPEATS = 2


def student_targets(labels, teacher_oof, label_smoothing: float) -> np.ndarray:
    """[N, 4]: the teacher's out-of-fold probabilities; the smoothed label on rows without (NaN)."""
    return distill_targets(labels, teacher_oof, 0.0, label_smoothing)


def _pairs_per_second(ranker, frame) -> float:
    ranker.predict(frame)  # traces the model's predict function
    best = np.inf
    for _ in range(SPEED_REPEATS):
        start = time.perf_counter()
        ranker.predict(frame)
        best = min(best, time.perf_counter() - start)
    return len(frame) / best


def scoring_speed(student, teacher, frame) -> dict:
    """Pairs per second of the student's and the teacher's bags on the same pairs (see the module
    docstring), their ratio and the CPU kind."""
    from esci_tf.cpu import cpu_kind

    pairs = frame.iloc[:SPEED_PAIRS]
    student_speed, teacher_speed = _pairs_per_second(student, pairs), _pairs_per_second(teacher, pairs)
    return {"student_pairs_per_second": student_speed, "teacher_pairs_per_second": teacher_speed,
            "ratio": student_speed / teacher_speed, "pairs": len(pairs), "student_models": len(student.members),
            "teacher_models": len(teacher.members), "cpu_kind": cpu_kind()}


def describe(entry: dict) -> str:
    """One line of the report's student entry, e.g. for the recipe's summary."""
    delta, speed = entry["student - teacher"]["all"], entry["speed"]
    return (f"student ({entry['layers']} of the teacher's {entry['teacher_layers']} layers) in {entry['directory']}: "
            f"out-of-fold NDCG {entry['ndcg']['all']['mean']:.4f} vs teacher (stage {entry['teacher']}) "
            f"{entry['teacher_ndcg']['all']['mean']:.4f}, difference {delta['mean']:+.4f} "
            f"(95% CI {delta['low']:+.4f} to {delta['high']:+.4f}, {delta['num_queries']} queries); scoring "
            f"{speed['student_pairs_per_second']:.0f} vs {speed['teacher_pairs_per_second']:.0f} pairs/s "
            f"({speed['ratio']:.2f}x) on CPU kind {speed['cpu_kind']}")
