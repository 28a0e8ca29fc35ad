"""trainers.recipe killed at every stage and rerun ends where an uninterrupted run ends; a changed
setting reruns exactly its stage and the ones after it."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from esci_tf import decisions
from esci_tf.data.reader import load_esci
from esci_tf.recipe.fine_tune import oof_probabilities
from recipe_fixtures import final_scores, recipe_args, run_recipe

pytestmark = pytest.mark.slow  # each recipe trains several tiny models

STAGES = ("folds", "distill", "pseudo", "ensemble")  # the stages recipe_args runs


def _finished_at(root, stages):
    return {s: json.load(open(os.path.join(root, s, "stage.json")))["finished_at"] for s in stages}


def test_killed_at_every_stage_then_rerun_with_a_changed_setting_ends_like_an_uninterrupted_run(recipe_files, tmp_path):
    changed = "--pseudo_threshold=0.26"  # the pseudo stage's threshold (recipe_args has 0.3)
    clean = tmp_path / "clean"
    output = run_recipe(recipe_args(recipe_files, clean, changed))
    assert "recipe finished" in output
    killed = tmp_path / "killed"
    for stage in STAGES:
        run_recipe(recipe_args(recipe_files, killed), kill_when=str(killed / stage / "started.json"))
    # The killed run got through pseudo (its last kill came as the ensemble started). Rerun with
    # the changed threshold: the stages before pseudo are kept, pseudo and the ensemble rerun, and
    # the result is the uninterrupted run's with that threshold.
    before = _finished_at(killed, STAGES[:-1])
    output = run_recipe(recipe_args(recipe_files, killed, changed))
    after = _finished_at(killed, STAGES)
    assert (after["folds"], after["distill"]) == (before["folds"], before["distill"])
    assert after["pseudo"] != before["pseudo"]
    assert "done with the same settings, skipped" in output and "settings changed (threshold 0.3 -> 0.26)" in output
    pd.testing.assert_frame_equal(pd.read_csv(killed / "folds" / "oof.csv"), pd.read_csv(clean / "folds" / "oof.csv"))
    np.testing.assert_allclose(final_scores(str(killed), recipe_files), final_scores(str(clean), recipe_files), atol=1e-6)
    report = json.loads((clean / "report.json").read_text())
    assert set(report["stages"]) == {"folds", "distill", "pseudo"} and report["ensemble"]["weights"]
    assert report["stages"]["folds"]["ndcg"]["all"]["num_queries"] > 0
    # Tasks 2 and 3: the rule fitted on the out-of-fold probabilities of the last stage that has them
    # (folds: distill and pseudo train on every pair here), the same after the kills, in R/final.
    decided = report["decisions"]
    assert decided["stage"] == "folds"
    saved = json.loads((clean / "final" / "decisions.json").read_text())
    assert saved == json.loads((killed / "final" / "decisions.json").read_text())
    assert decisions.load(str(clean / "final")) == decisions.DecisionRule.from_dict(decided)
    frame, _ = load_esci(recipe_files[0], recipe_files[1], task="all")
    probabilities = oof_probabilities(frame, pd.read_csv(clean / "folds" / "oof.csv"))
    labels = frame["label"].to_numpy()
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == labels))  # task 2's micro-F1 by argmax
    assert decided["out_of_fold"]["task2"]["argmax"] == pytest.approx(accuracy)
    assert report["stages"]["folds"]["micro_f1_argmax"]["task2"] == pytest.approx(accuracy)
    refit = decisions.fit_decisions(probabilities, labels, frame["query_id"].to_numpy())
    assert {k: v for k, v in decided.items() if k != "stage"} == saved == json.loads(json.dumps(refit.to_dict()))
    for task in ("task2", "task3"):
        assert decided["out_of_fold"][task]["fitted"] >= decided["out_of_fold"][task]["argmax"]
