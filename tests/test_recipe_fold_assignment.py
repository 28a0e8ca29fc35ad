"""Shared folds: a recipe writes R/folds/fold_assignment.csv, --folds_from=R0 keeps each query's
fold of R0 (a --locales subset included), and check_aligned names the first query two runs put in
different folds."""

import json

import numpy as np
import pandas as pd
import pytest

from esci_tf import files
from esci_tf.errors import DataError
from esci_tf.data.reader import load_esci
from esci_tf.recipe import fold_assignment, targets
from esci_tf.recipe.config import RecipeConfig
from esci_tf.recipe.stages import Stage
from esci_tf.rankers.base import ranker_locales
from esci_tf.training.config import ConfigError, RunConfig
from recipe_fixtures import TINY


def _assignment(folds: dict) -> pd.Series:
    return pd.Series(list(folds.values()), index=pd.Index(list(folds), name="query_id"))


def test_write_then_read_gives_each_query_its_fold(tmp_path):
    path = fold_assignment.write(str(tmp_path), [5, 5, 3, 9], [1, 1, 0, 2])
    assert path == str(tmp_path / "folds" / fold_assignment.FILE_NAME)
    assert list(pd.read_csv(path).columns) == ["query_id", "fold"]
    assert fold_assignment.read(str(tmp_path)).to_dict() == {3: 0, 5: 1, 9: 2}
    with pytest.raises(ValueError, match=r"query_id 5 is in folds \[0, 1\]"):
        fold_assignment.write(str(tmp_path), [5, 5], [1, 0])
    assert fold_assignment.read(str(tmp_path)).to_dict() == {3: 0, 5: 1, 9: 2}  # left as it was
    with pytest.raises(DataError, match=f"^{tmp_path / 'nothing' / 'folds' / 'fold_assignment.csv'}: no fold"):
        fold_assignment.read(str(tmp_path / "nothing"))


def test_check_aligned_names_the_first_query_in_two_folds():
    r1 = _assignment({10: 0, 11: 1, 17: 0, 20: 2, 25: 1})
    r2 = _assignment({11: 1, 20: 2, 99: 0})  # a subset (and a query R1 lacks): aligned
    r3 = _assignment({25: 0, 17: 2, 10: 0})
    fold_assignment.check_aligned({"R1": r1, "R2": r2})
    with pytest.raises(ValueError) as error:
        fold_assignment.check_aligned({"R1": r1, "R2": r2, "R3": r3})
    assert str(error.value) == ("runs R1 and R3 are not aligned: query_id 17 is in fold 0 of R1 and fold 2 of R3; "
                                "give R3 --folds_from=R1")


def test_folds_from_rules(tmp_path):
    frame = pd.DataFrame({"query_id": [1, 1, 2, 3, 4], "query": ["a", "a", "b", "c", "A"]})
    fold_assignment.write(str(tmp_path), [1, 2, 3, 4], [0, 1, 2, 0])
    np.testing.assert_array_equal(fold_assignment.folds_from(str(tmp_path), frame, 3), [0, 0, 1, 2, 0])
    with pytest.raises(ConfigError, match="give --num_folds=3 \\(got 2\\)"):
        fold_assignment.folds_from(str(tmp_path), frame, 2)
    with pytest.raises(ConfigError, match=f"--folds_from={tmp_path}: query_id 7 of the training pairs is not in"):
        fold_assignment.folds_from(str(tmp_path), pd.concat([frame, frame.iloc[:1].assign(query_id=7)]), 3)
    fold_assignment.write(str(tmp_path), [1, 2, 3, 4], [0, 1, 2, 1])  # "a" and "A": one group, two folds
    with pytest.raises(ConfigError, match="the queries of group 1 .* are in different folds"):
        fold_assignment.folds_from(str(tmp_path), frame, 3)


@pytest.mark.slow  # a recipe trains two tiny fold models
def test_recipe_writes_its_folds_and_takes_another_runs_for_a_locale_subset(recipe_files, tmp_path):
    from esci_tf.recipe.pipeline import run_recipe

    frame, _ = load_esci(recipe_files[0], recipe_files[1], task="all")
    # R0's assignment: the opposite of what this run would draw itself, so only --folds_from gives it.
    drawn = targets.assign_recipe_folds(frame, 2, 0)
    fold_assignment.write(str(tmp_path / "R0"), frame["query_id"], 1 - drawn)
    r0 = fold_assignment.read(str(tmp_path / "R0"))
    run = RunConfig.from_flat({
        "examples": recipe_files[0], "products": recipe_files[1], "task": "all", "locales": ("us",),
        "backbone": "xlm_roberta", "backbone_config": json.loads(TINY), "max_length": 24, "batch_size": 8,
        "steps": 2, "learning_rate": 1e-3, "num_shards": 1, "strategy": "cpu", "progress_bar": False,
        "output_dir": str(tmp_path / "R1")})
    config = RecipeConfig(run, output_dir=str(tmp_path / "R1"), num_folds=2, distill=False,
                          members=("cross_encoder", "bm25"), folds_from=str(tmp_path / "R0"),
                          bootstrap_samples=20, min_list_size=5)
    run_recipe(config)
    root = tmp_path / "R1"
    us_queries = sorted(set(frame.loc[frame["product_locale"] == "us", "query_id"]))
    written = fold_assignment.read(str(root))
    assert sorted(written.index) == us_queries  # every labeled query of the run, us only
    pd.testing.assert_series_equal(written, r0.loc[us_queries])  # each keeps R0's fold
    fold_assignment.check_aligned({"R0": r0, "R1": written})
    rows = pd.read_csv(root / "folds" / "folds.csv").merge(frame[["example_id", "query_id"]], on="example_id")
    assert (rows["fold"].to_numpy() == r0.loc[rows["query_id"]].to_numpy()).all()
    # Trained and evaluated on us pairs only, and recorded so: each fold model and R/final are us-only.
    for fold in (0, 1):
        run_dir = root / "folds" / f"fold_{fold}"
        assert set(pd.read_csv(run_dir / "eval_predictions.csv")["product_locale"]) == {"us"}
        assert ranker_locales(str(run_dir)) == ("us",)
    assert json.loads((root / "final" / "ranker.json").read_text())["locales"] == ["us"]
    assert ranker_locales(str(root / "final")) == ("us",)
    # The folds stage records R0's assignment: another assignment is a changed setting (a rerun).
    settings = json.loads((root / "folds" / "stage.json").read_text())["settings"]
    assert settings["folds_from"] == {"run": str(tmp_path / "R0"),
                                      "assignment": files.fingerprint(fold_assignment.path(str(tmp_path / "R0")))}
    changed = dict(settings, folds_from=dict(settings["folds_from"], assignment={"size": 1, "sha256": "0" * 64}))
    assert Stage(str(root), "folds", changed).changed_settings() == ["folds_from"]
