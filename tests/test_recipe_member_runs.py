"""trainers.recipe --member_runs: member runs from flagfiles, aligned with the run, and R/final the
ensemble across them (esci_tf.recipe.member_runs)."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from recipe_fixtures import REPO, final_scores, recipe_args, run_recipe

pytestmark = pytest.mark.slow  # two tiny recipe runs (2 folds each) in a subprocess


def _settings_of_first_fold(run_dir):
    folds = os.path.join(run_dir, "folds")
    fold = sorted(d for d in os.listdir(folds) if d.startswith("fold_"))[0]
    return json.load(open(os.path.join(folds, fold, "run_settings.json")))


def test_member_runs_train_aligned_and_final_is_their_ensemble(recipe_files, tmp_path):
    member_flags = tmp_path / "us_member.flags"
    member_flags.write_text("# a us-only member with its own learning rate\n--locales=us\n--learning_rate=5e-4\n")
    root = tmp_path / "R"
    args = recipe_args(recipe_files, root, "--nodistill", "--steps=2", "--ensemble_folds=3", f"--member_runs={member_flags}")
    output = run_recipe(args)
    member = root / "runs" / "us_member"
    assert "recipe: member run us_member" in output and "recipe stage runs_ensemble: running" in output

    # The member run: the command line's settings with the flagfile's winning, R's folds, no pseudo stage.
    own, theirs = _settings_of_first_fold(str(root)), _settings_of_first_fold(str(member))
    assert own["learning_rate"] == 1e-3 and theirs["learning_rate"] == 5e-4
    assert own.get("locales", []) in ([], ()) and list(theirs["locales"]) == ["us"]
    assert (root / "pseudo" / "stage.json").exists() and not (member / "pseudo").exists()
    folds = pd.read_csv(root / "folds" / "fold_assignment.csv").set_index("query_id")["fold"]
    member_folds = pd.read_csv(member / "folds" / "fold_assignment.csv").set_index("query_id")["fold"]
    assert len(member_folds) < len(folds)  # us queries only
    assert (folds.loc[member_folds.index] == member_folds).all()

    # R/final: the ensemble across both runs (trainers.ensemble's), its report beside it.
    report = json.loads((root / "final" / "report.json").read_text())
    assert set(report["members"]) >= {"R.cross_encoder", "us_member.cross_encoder", "bm25"}
    assert [os.path.basename(r) for r in report["settings"]["runs"]] == ["R", "us_member"]
    assert "nested" in report["ensemble"]
    ranker = json.loads((root / "final" / "ranker.json").read_text())
    assert ranker["kind"] == "ensemble"
    scores = final_scores(str(root), recipe_files)
    assert np.isfinite(scores).all()

    # A rerun does nothing again, and scores the same.
    again = run_recipe(args)
    assert "recipe stage runs_ensemble: done with the same settings, skipped" in again
    assert "running" not in again.replace("recipe stage runs_ensemble: done", "")
    np.testing.assert_allclose(final_scores(str(root), recipe_files), scores, rtol=1e-6)


def test_a_member_flagfile_that_does_not_exist_is_one_line(recipe_files, tmp_path):
    process = subprocess.run([sys.executable, "-m", "trainers.recipe",
                              *recipe_args(recipe_files, tmp_path / "R", f"--member_runs={tmp_path / 'nope.flags'}")],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert process.returncode != 0
    lines = [line for line in process.stderr.strip().splitlines() if line.strip()]
    assert "nope.flags" in lines[-1] and "Traceback" not in process.stderr
    assert not (tmp_path / "R").exists()
