"""trainers.recipe killed at every stage and rerun ends where an uninterrupted run ends; a changed
setting reruns exactly the stages after it."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from recipe_fixtures import final_scores, recipe_args, run_recipe

pytestmark = pytest.mark.slow  # each recipe trains several tiny models

STAGES = ("folds", "distill", "pseudo", "ensemble")  # the stages recipe_args runs


def _finished_at(root):
    return {s: json.load(open(os.path.join(root, s, "stage.json")))["finished_at"] for s in STAGES}


def test_killed_at_every_stage_ends_like_an_uninterrupted_run(recipe_files, tmp_path):
    clean = tmp_path / "clean"
    output = run_recipe(recipe_args(recipe_files, clean))
    assert "recipe finished" in output
    killed = tmp_path / "killed"
    for stage in STAGES:
        run_recipe(recipe_args(recipe_files, killed), kill_when=str(killed / stage / "started.json"))
    output = run_recipe(recipe_args(recipe_files, killed))
    assert "done with the same settings, skipped" in output
    pd.testing.assert_frame_equal(pd.read_csv(killed / "folds" / "oof.csv"), pd.read_csv(clean / "folds" / "oof.csv"))
    np.testing.assert_allclose(final_scores(str(killed), recipe_files), final_scores(str(clean), recipe_files), atol=1e-6)
    report = json.loads((clean / "report.json").read_text())
    assert set(report["stages"]) == {"folds", "distill", "pseudo"} and report["ensemble"]["weights"]
    assert report["stages"]["folds"]["ndcg"]["all"]["num_queries"] > 0

    # A changed setting reruns its stage and the ones after it, and only those (the pseudo stage's
    # threshold: folds and distill stay, pseudo and the ensemble rerun).
    before = _finished_at(clean)
    output = run_recipe(recipe_args(recipe_files, clean, "--pseudo_threshold=0.26"))
    after = _finished_at(clean)
    assert (after["folds"], after["distill"]) == (before["folds"], before["distill"])
    assert all(after[s] != before[s] for s in ("pseudo", "ensemble"))
    assert "settings changed (threshold)" in output
