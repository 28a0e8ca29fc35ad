"""Tasks 2 and 3 from class probabilities: the files' labels and micro-F1 on hand-made pairs, the
fitted rule (never worse than argmax on its pairs, argmax when nothing beats it, deterministic),
and decisions.json."""

import json
import math

import numpy as np
import pytest

from esci_tf import decisions
from esci_tf.errors import DataError
from esci_tf.decisions import DecisionRule

E, S, C, I = range(4)
# Six hand-made pairs (p_E, p_S, p_C, p_I) and their true classes.
PROBABILITIES = np.array([[0.70, 0.20, 0.05, 0.05],   # E: argmax E, right
                          [0.50, 0.40, 0.05, 0.05],   # S: argmax E, wrong
                          [0.45, 0.45, 0.05, 0.05],   # E: a tie, E comes first: right
                          [0.10, 0.20, 0.60, 0.10],   # C: argmax C, right
                          [0.20, 0.10, 0.10, 0.60],   # E: argmax I, wrong
                          [0.30, 0.35, 0.05, 0.30]])  # S: argmax S, right
LABELS = np.array([E, S, E, C, E, S])


def test_task2_and_task3_files_and_micro_f1_by_argmax():
    table = decisions.submission_table([10, 11, 12, 13, 14, 15], PROBABILITIES, DecisionRule(), "2")
    assert list(table.columns) == ["example_id", "esci_label"]
    assert table["example_id"].tolist() == [10, 11, 12, 13, 14, 15]
    assert table["esci_label"].tolist() == ["exact", "exact", "exact", "complement", "irrelevant", "substitute"]
    table = decisions.submission_table(range(6), PROBABILITIES, DecisionRule(), "3")
    assert list(table.columns) == ["example_id", "substitute_label"]
    assert table["substitute_label"].tolist() == ["no_substitute"] * 5 + ["substitute"]
    # Task 2: 4 of 6 right: TP 4, FP 2, FN 2 -> 2*4 / (2*4 + 2 + 2) = 2/3. Task 3: only pair 2
    # (a substitute called no_substitute) is wrong: TP 5, FP 1, FN 1 -> 10/12 = 5/6.
    scores = decisions.task_micro_f1(PROBABILITIES, LABELS, DecisionRule())
    assert scores == pytest.approx({"task2": 2 / 3, "task3": 5 / 6})


def test_task2_and_task3_by_a_rule_with_priors_and_a_threshold():
    rule = DecisionRule((0.0, math.log(1.5), 0.0, 0.0), 0.3)  # S counts 1.5 times; substitute when P(S) >= 0.3
    table = decisions.submission_table(range(6), PROBABILITIES, rule, "2")
    # Pair 2: 0.6 > 0.5 and pair 3: 0.675 > 0.45 become substitutes: 4 of 6 right (pairs 1, 2, 4, 6).
    assert table["esci_label"].tolist() == ["exact", "substitute", "substitute", "complement", "irrelevant",
                                            "substitute"]
    table = decisions.submission_table(range(6), PROBABILITIES, rule, "3")
    assert table["substitute_label"].tolist() == ["no_substitute", "substitute", "substitute", "no_substitute",
                                                  "no_substitute", "substitute"]  # pair 3 wrong: 5 of 6
    assert decisions.task_micro_f1(PROBABILITIES, LABELS, rule) == pytest.approx({"task2": 4 / 6, "task3": 5 / 6})


def test_micro_f1_over_all_classes_is_accuracy():
    rng = np.random.default_rng(0)
    true, predicted = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    assert decisions.micro_f1(true, predicted, 4) == pytest.approx(np.mean(true == predicted))
    true, predicted = rng.random(500) < 0.2, rng.random(500) < 0.3
    assert decisions.micro_f1(true, predicted, 2) == pytest.approx(np.mean(true == predicted))


def test_fitted_priors_and_threshold_beat_argmax_where_they_can():
    # Three substitutes the model puts just under exact, two clear exacts: argmax gets 2 of 5.
    probabilities = np.array([[0.55, 0.45, 0.0, 0.0]] * 3 + [[0.9, 0.1, 0.0, 0.0]] * 2)
    labels = np.array([S, S, S, E, E])
    fit = decisions.fit_decisions(probabilities, labels)
    # o_S must exceed log(0.55 / 0.45) = 0.2007 (and stay under log 9): the nearest grid value to 0 is 0.3.
    # P(S) cut between 0.1 and 0.45: the midpoint 0.275.
    assert fit.rule == DecisionRule((0.0, 0.3, 0.0, 0.0), 0.275)
    assert fit.micro_f1["task2"] == {"argmax": pytest.approx(2 / 5), "fitted": 1.0}
    assert fit.micro_f1["task3"] == {"argmax": pytest.approx(2 / 5), "fitted": 1.0}
    assert fit.micro_f1["pairs"] == 5


def test_the_rule_stays_argmax_when_nothing_beats_it():
    # Argmax is right on every pair: nothing can do better.
    assert decisions.fit_rule(PROBABILITIES[[0, 3, 5]], LABELS[[0, 3, 5]]) == DecisionRule()
    # The same probabilities with two different labels: any rule gets one of the two right, as argmax does.
    same = np.array([[0.6, 0.4, 0.0, 0.0]] * 2)
    assert decisions.fit_rule(same, np.array([E, S])) == DecisionRule()


def test_a_gain_only_on_the_fitted_pairs_is_not_kept():
    # Five one-pair queries, all argmax E, alternately substitutes and exacts as P(S) grows: calling
    # every pair a substitute gets 3 of 5 right where argmax gets 2, but a rule fitted on four of
    # the queries decides the fifth wrongly every time (worked through by hand for task 3).
    p_substitute = np.array([0.40, 0.41, 0.42, 0.43, 0.44])
    probabilities = np.stack([0.95 - p_substitute, p_substitute, np.full(5, 0.05), np.zeros(5)], axis=1)
    labels = np.array([S, E, S, E, S])
    assert decisions.fit_rule(probabilities, labels) != DecisionRule()  # on its own pairs, it gains
    fit = decisions.fit_decisions(probabilities, labels, query_ids=[1, 2, 3, 4, 5])
    assert fit.rule == DecisionRule()
    assert fit.micro_f1["task3"] == {"argmax": pytest.approx(2 / 5), "fitted_cross_validated": 0.0,
                                     "fitted": pytest.approx(2 / 5)}
    assert fit.micro_f1["task2"]["fitted_cross_validated"] <= fit.micro_f1["task2"]["argmax"]


def test_fit_is_deterministic_and_never_worse_than_argmax_on_its_pairs():
    rng = np.random.default_rng(3)
    for seed in range(3):
        labels = rng.choice(4, 400, p=[0.6, 0.25, 0.05, 0.1])
        logits = rng.normal(size=(400, 4)) + 1.2 * np.eye(4)[labels] + np.array([0.8, 0.0, 0.0, 0.0])
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        queries = rng.integers(0, 40, 400)
        fit = decisions.fit_decisions(probabilities, labels, queries, seed=seed)
        again = decisions.fit_decisions(probabilities.copy(), labels.copy(), queries.copy(), seed=seed)
        assert fit.to_dict() == again.to_dict()
        for task in ("task2", "task3"):
            assert fit.micro_f1[task]["fitted"] >= fit.micro_f1[task]["argmax"]
            assert 0.0 <= fit.micro_f1[task]["fitted_cross_validated"] <= 1.0
        assert fit.micro_f1["queries"] == len(np.unique(queries))


def test_decisions_json_round_trip_and_a_bad_file(tmp_path):
    fit = decisions.fit_decisions(PROBABILITIES, LABELS)
    path = decisions.save(str(tmp_path), fit)
    assert path == str(tmp_path / "decisions.json")
    assert decisions.load(str(tmp_path)) == fit.rule
    saved = json.loads((tmp_path / "decisions.json").read_text())
    assert saved["out_of_fold"]["task2"]["argmax"] == pytest.approx(2 / 3)
    assert decisions.load(str(tmp_path / "none")) is None
    (tmp_path / "decisions.json").write_text(json.dumps({"task2": {"log_offsets": {"E": 0}}}))
    with pytest.raises(DataError, match="decisions.json: not a decision rule"):
        decisions.load(str(tmp_path))


def test_offset_search_counts_equal_deciding_every_pair_at_every_grid_value():
    # coarse probabilities: many ties between classes (they go to the earlier class) and at grid values
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 3000)
    probabilities = np.round(rng.dirichlet(np.ones(4), 3000) * 10) / 10 + 0.05
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    log_probabilities = decisions._log(probabilities)
    for offsets in (np.zeros(4), np.array([0.0, 0.7, -1.2, 0.3]), np.array([0.0, -3.0, 3.0, 0.0])):
        for k in (1, 2, 3):
            trial = np.repeat(offsets[None], len(decisions.GRID), axis=0)
            trial[:, k] = decisions.GRID
            every_pair = [np.sum(decisions._decide(log_probabilities, o) == labels) for o in trial]
            assert decisions._right_per_grid_value(log_probabilities, labels, offsets, k).tolist() == every_pair
