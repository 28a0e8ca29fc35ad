"""Ensembles across recipe runs: trainers.ensemble on two tiny aligned runs (one us-only, which also
takes the other as a dir: member), what it refuses (unaligned runs, a dir: run trained on the same
pairs with other folds, a member with out-of-fold scores for only part of a locale), and E/ as a
ranker directory for trainers.predict."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from esci_tf.errors import FlagError
from esci_tf.data.reader import load_esci
from esci_tf.ensembles.build import build_ensemble
from esci_tf.ensembles.settings import EnsembleSettings
from esci_tf.rankers import load_ranker
from esci_tf.rankers.base import predict
from esci_tf.rankers.ensemble import ALL_LOCALES
from esci_tf.recipe import fold_assignment, members, runs
from esci_tf.training.config import ConfigError
from recipe_fixtures import REPO, TINY

pytestmark = pytest.mark.slow  # the module's fixture trains two tiny recipe runs (2 folds each)


def _recipe(files, root, **settings):
    from esci_tf.recipe.config import RecipeConfig
    from esci_tf.recipe.pipeline import run_recipe
    from esci_tf.training.config import RunConfig

    locales = settings.pop("locales", ())
    run = RunConfig.from_flat({
        "examples": files[0], "products": files[1], "task": "all", "locales": locales, "backbone": "xlm_roberta",
        "backbone_config": json.loads(TINY), "max_length": 24, "batch_size": 8, "steps": 2, "learning_rate": 1e-3,
        "num_shards": 1, "strategy": "cpu", "progress_bar": False, "output_dir": str(root)})
    run_recipe(RecipeConfig(run, output_dir=str(root), num_folds=2, distill=False, bootstrap_samples=20,
                            min_list_size=5, ensemble_folds=3, **settings))
    return str(root)


@pytest.fixture(scope="module")
def two_runs(recipe_files, tmp_path_factory):
    """R_all: every locale, cross-encoder + bi-encoder + BM25. R_us: us only, R_all's folds, and R_all
    as a dir: member (trained on the same pairs, aligned: its out-of-fold scores are used)."""
    root = tmp_path_factory.mktemp("ensemble_runs")
    r_all = _recipe(recipe_files, root / "R_all", members=("cross_encoder", "bi_encoder", "bm25"),
                    bi_encoder_epochs=1)
    r_us = _recipe(recipe_files, root / "R_us", locales=("us",), folds_from=r_all,
                   members=("cross_encoder", "bm25", f"dir:{r_all}"))
    return r_all, r_us


def _settings(recipe_files, output_dir, run_dirs, **changes):
    return EnsembleSettings(tuple(run_dirs), str(output_dir), recipe_files[0], recipe_files[1], members=("bm25",),
                            ensemble_folds=3, min_locale_queries=1, bootstrap_samples=20, min_list_size=5,
                            **changes)


def test_a_dir_member_trained_on_the_same_pairs_uses_its_out_of_fold_scores_only_when_aligned(two_runs, recipe_files):
    r_all, r_us = two_runs
    run = runs.load_run(r_all)
    frame, _ = load_esci(recipe_files[0], recipe_files[1], task="all")
    frame = frame[frame["example_id"].isin(run.example_ids)].reset_index(drop=True)
    # Aligned: R_all/final's out-of-fold combination on its own pairs, not its (in-sample) scores.
    scores, directory = members.external_scores(r_all, frame, run.folds, "R_new")
    assert directory == os.path.join(r_all, "final")
    saved = json.loads(open(os.path.join(directory, "ranker.json")).read())
    oof = pd.read_csv(os.path.join(r_all, "ensemble", "member_scores.csv")).set_index("example_id")
    oof = oof.loc[frame["example_id"]]
    expected = np.zeros(len(frame))
    for locale in set(frame["product_locale"]):
        rows = (frame["product_locale"] == locale).to_numpy()
        for name, weight in saved["weights"].get(locale, saved["weights"][ALL_LOCALES]).items():
            mean, std = saved["normalization"][name]
            expected[rows] += weight * (oof[f"score_{name}"].to_numpy()[rows] - mean) / std
    np.testing.assert_allclose(scores, expected)
    # Not aligned: refused, naming the query.
    other = run.folds.copy()
    other.iloc[0] = 1 - other.iloc[0]
    with pytest.raises(ConfigError, match=rf"--members=dir:{r_all}: that run trained on {len(frame)} of these pairs.*"
                                          rf"query_id {other.index[0]} is in fold"):
        members.external_scores(r_all, frame, other, "R_new")
    # The recipe run that took it as a member used those scores (R_us's pairs are R_all's us pairs).
    saved = pd.read_csv(os.path.join(r_us, "ensemble", "member_scores.csv"))
    by_id = pd.Series(expected, index=frame["example_id"])
    np.testing.assert_allclose(saved[f"score_dir:{r_all}"], by_id.loc[saved["example_id"]].to_numpy())


def test_ensemble_of_two_runs_with_a_us_only_member_is_a_ranker_for_predict(two_runs, recipe_files, tmp_path):
    r_all, r_us = two_runs
    report = build_ensemble(_settings(recipe_files, tmp_path / "E", [r_all, r_us]))
    fit = report["ensemble"]
    assert set(report["members"]) == {"R_all.cross_encoder", "R_all.bi_encoder", "R_us.cross_encoder", "bm25"}
    assert report["members"]["R_us.cross_encoder"]["scored_pairs"] < report["data"]["pairs"]
    assert {"all", "locale_us"} <= set(report["members"]["R_us.cross_encoder"])
    assert "locale_es" not in report["members"]["R_us.cross_encoder"]
    assert set(fit["weights"]) == {ALL_LOCALES, "us", "es", "jp"}
    for group, weights in fit["weights"].items():  # the us-only member is weighted in us alone
        assert sum(weights.values()) == pytest.approx(1.0)
        if group != "us":
            assert "R_us.cross_encoder" not in weights and "R_us.cross_encoder" not in fit["groups"][group][
                "ensemble_weights"]
    assert report["correlation"]["bm25"]["bm25"] == pytest.approx(1.0)
    nested = fit["nested"]
    assert nested["num_queries"] == report["data"]["queries"] and len(fit["outer"]) == 3
    assert {"mean", "low", "high"} <= set(nested["ensemble_minus_best"])
    # The same estimate on the long-list queries alone (min_list_size=5 here): the mean of their held-out NDCGs.
    long_lists = report["added"]["ensemble - best member (nested)"]["long_lists"]
    sizes = pd.read_parquet(recipe_files[0]).groupby("query_id").size()
    long_ids = [str(q) for q in sizes.index[sizes >= 5] if str(q) in nested["per_query"]["ensemble"]]
    assert long_lists["ensemble"] == pytest.approx(np.mean([nested["per_query"]["ensemble"][q] for q in long_ids]))
    assert long_lists["num_queries"] == len(long_ids) == report["data"]["long_list_queries"]
    assert (tmp_path / "E" / "report.png").read_bytes()[:4] == b"\x89PNG"
    # Tasks 2 and 3: the cross-encoder scoring the most pairs is E/'s classifier and fits decisions.json.
    assert report["decisions"]["stage"] == "R_all.cross_encoder"
    assert {"task2", "task3"} <= set(report["decisions"]["out_of_fold"])
    assert json.loads((tmp_path / "E" / "ranker.json").read_text())["classifier"] == "R_all.cross_encoder"
    assert (tmp_path / "E" / "decisions.json").exists()
    # E/ is a ranker directory: trainers.predict scores a mixed-locale frame as the library does.
    from trainers import predict as predict_main

    table = predict_main.run_with_args(["predict", f"--model_dir={tmp_path / 'E'}", f"--examples={recipe_files[2]}",
                                        f"--products={recipe_files[3]}", "--task=all",
                                        f"--output={tmp_path / 'preds.csv'}"])
    frame, _ = load_esci(recipe_files[2], recipe_files[3], task="all", require_labels=False)
    assert len(set(frame["product_locale"])) > 1
    ensemble = load_ranker(str(tmp_path / "E"))
    np.testing.assert_allclose(table["score"], predict(ensemble, frame).scores, atol=1e-6)
    assert np.isfinite(table["score"]).all()
    assert np.isfinite(table[["p_E", "p_S", "p_C", "p_I"]].to_numpy()).all()  # whatever the weights chose


def test_a_duplicated_run_gets_no_extra_weight(two_runs, recipe_files, tmp_path):
    r_all, r_us = two_runs
    copy = str(tmp_path / "R_all_copy")
    shutil.copytree(r_all, copy)  # the same models and out-of-fold scores under another name
    alone = build_ensemble(_settings(recipe_files, tmp_path / "E1", [r_all, r_us]))["ensemble"]
    twice = build_ensemble(_settings(recipe_files, tmp_path / "E2", [r_all, r_us, copy]))["ensemble"]
    renamed = {group: {n.replace("R_all_copy.", "R_all."): w for n, w in weights.items()}
               for group, weights in twice["weights"].items()}
    assert renamed == alone["weights"]
    for group, dropped in twice["dropped"].items():  # each copy correlates 1 with its original
        for name in ("R_all.cross_encoder", "R_all.bi_encoder"):
            if name in alone["groups"][group]["ensemble_weights"] or name in (alone["dropped"].get(group) or {}):
                assert name in dropped or name.replace("R_all.", "R_all_copy.") in dropped


def test_unaligned_runs_and_partly_scored_members_are_refused(two_runs, recipe_files, tmp_path):
    r_all, r_us = two_runs
    shifted = str(tmp_path / "R_shifted")
    shutil.copytree(r_us, shifted)
    assignment = fold_assignment.read(shifted)
    first = int(assignment.index[0])
    assignment.iloc[0] = 1 - assignment.iloc[0]
    fold_assignment.write(shifted, assignment.index, assignment.to_numpy())
    with pytest.raises(FlagError, match=rf"^--runs: runs {r_all} and {shifted} are not aligned: query_id {first} "):
        build_ensemble(_settings(recipe_files, tmp_path / "E", [r_all, shifted]))
    # A run whose out-of-fold scores miss some pairs of a locale (one fold model's lost).
    partial = str(tmp_path / "R_partial")
    shutil.copytree(r_us, partial)
    oof = pd.read_csv(os.path.join(partial, "folds", "oof.csv"))
    oof.iloc[1:].to_csv(os.path.join(partial, "folds", "oof.csv"), index=False)
    with pytest.raises(FlagError, match=r"^--runs: member R_partial.cross_encoder has out-of-fold scores for \d+ of "
                                        r"the \d+ us pairs \(none for example_id \S+, among others\)"):
        build_ensemble(_settings(recipe_files, tmp_path / "E", [r_all, partial]))
    assert not (tmp_path / "E" / "ranker.json").exists()
    # The command line: one line naming the flag, exit 2, nothing written.
    process = subprocess.run([sys.executable, "-m", "trainers.ensemble", f"--runs={r_all},{shifted}",
                              f"--output_dir={tmp_path / 'E3'}", f"--examples={recipe_files[0]}",
                              f"--products={recipe_files[1]}"], cwd=REPO, capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 2, process.stderr[-2000:]
    assert process.stderr.strip().splitlines()[-1].startswith("trainers.ensemble: --runs: runs ")
    assert "Traceback" not in process.stderr and not (tmp_path / "E3" / "ranker.json").exists()


def test_trainers_ensemble_command_line(two_runs, recipe_files, tmp_path):
    r_all, r_us = two_runs
    process = subprocess.run([sys.executable, "-m", "trainers.ensemble", f"--runs={r_all},{r_us}",
                              f"--output_dir={tmp_path / 'E'}", f"--examples={recipe_files[0]}",
                              f"--products={recipe_files[1]}", "--members=bm25", "--ensemble_folds=3",
                              "--min_locale_queries=1", "--bootstrap_samples=20"], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    assert f"ensemble written to {tmp_path / 'E'}" in process.stdout and "nested NDCG" in process.stdout
    assert json.loads((tmp_path / "E" / "ranker.json").read_text())["kind"] == "ensemble"
