"""trainers.recipe end to end on generated data with a tiny model: killed at every stage and rerun
it ends where an uninterrupted run ends; a changed setting reruns exactly the stages after it;
out-of-fold predictions cover every training pair once, from the model that did not train on
it, and pseudo pairs are never evaluated; R/final, trained with TPU-like settings (XLA-compiled
steps, steps_per_execution, fixed shapes), scores the same through predict and export."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from esci_tf.data.reader import load_esci
from esci_tf.data.synthetic import write_esci_files
from esci_tf.data.template import TemplateSettings
from esci_tf.recipe import fine_tune as tuning, targets
from esci_tf.rankers import load_ranker
from esci_tf.rankers.base import predict
from esci_tf.serving.export import serving_inputs
from esci_tf.training.config import RunConfig
from tfrecords.dataset import read_all

pytestmark = pytest.mark.slow  # each recipe trains several tiny models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = json.dumps({"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64})
STAGES = ("folds", "distill", "pseudo", "ensemble")
# trainers/flags/tpu.flags' runtime settings on CPU: the XLA-compiled train step, several steps per
# compiled call and fixed [batch, max_length] shapes (no length buckets; training batches drop the
# last partial one), so the fine-tunes run the code path a TPU compiles.
TPU_LIKE = ("--jit_compile", "--steps_per_execution=2", "--length_buckets=")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe_data")
    examples, products = write_esci_files(16, 0, str(root / "train"))
    unlabeled, unlabeled_products = write_esci_files(6, 7, str(root / "unlabeled"))
    pd.read_parquet(unlabeled).drop(columns=["esci_label"]).to_parquet(unlabeled)
    return examples, products, unlabeled, unlabeled_products


def _args(files, output_dir, *extra):
    examples, products, unlabeled, unlabeled_products = files
    return [f"--examples={examples}", f"--products={products}", "--task=all", "--backbone=xlm_roberta",
            f"--backbone_config={TINY}", "--max_length=24", "--batch_size=8", "--steps=4", "--learning_rate=1e-3",
            "--checkpoint_every_steps=2", "--num_shards=1", "--strategy=cpu", f"--output_dir={output_dir}",
            f"--pseudo_examples={unlabeled}", f"--pseudo_products={unlabeled_products}", "--pseudo_threshold=0.3",
            "--members=cross_encoder,bm25", "--bootstrap_samples=100", "--min_list_size=5",
            "--num_folds=2", *extra]  # 2 folds: every stage's logic, fewer models to train


def _recipe(args, kill_when=None):
    """Run trainers.recipe in a subprocess; with kill_when (a path), SIGKILL it soon after the
    path appears. Returns the exit code."""
    process = subprocess.Popen([sys.executable, "-m", "trainers.recipe", *args], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_when is None:
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output[-3000:]
        return output
    deadline = time.time() + 900
    while not os.path.exists(kill_when) and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    return None


def _final_scores(root, files):
    frame, _ = load_esci(files[2], files[3], task="all", require_labels=False)
    return predict(load_ranker(os.path.join(root, "final")), frame).scores


def _finished_at(root):
    return {s: json.load(open(os.path.join(root, s, "stage.json")))["finished_at"] for s in STAGES}


def test_killed_at_every_stage_ends_like_an_uninterrupted_run(files, tmp_path):
    clean = tmp_path / "clean"
    output = _recipe(_args(files, clean))
    assert "recipe finished" in output
    killed = tmp_path / "killed"
    for stage in STAGES:
        _recipe(_args(files, killed), kill_when=str(killed / stage / "started.json"))
    output = _recipe(_args(files, killed))
    assert "done with the same settings, skipped" in output
    pd.testing.assert_frame_equal(pd.read_csv(killed / "folds" / "oof.csv"), pd.read_csv(clean / "folds" / "oof.csv"))
    np.testing.assert_allclose(_final_scores(str(killed), files), _final_scores(str(clean), files), atol=1e-6)
    report = json.loads((clean / "report.json").read_text())
    assert set(report["stages"]) == {"folds", "distill", "pseudo"} and report["ensemble"]["weights"]
    assert report["stages"]["folds"]["ndcg"]["all"]["num_queries"] > 0

    # A changed setting reruns its stage and the ones after it, and only those.
    before = _finished_at(clean)
    output = _recipe(_args(files, clean, "--hard_label_weight=0.5"))
    after = _finished_at(clean)
    assert after["folds"] == before["folds"]
    assert all(after[s] != before[s] for s in ("distill", "pseudo", "ensemble"))
    assert "settings changed (hard_label_weight)" in output


def test_final_ranker_scores_the_same_through_predict_and_export(files, tmp_path):
    root = tmp_path / "run"
    # TPU-like settings: folds, pseudo (the soft-target fine-tune distill shares), the bi_encoder
    # member, the ensemble, then predict and export of R/final.
    _recipe(_args(files, root, *TPU_LIKE, "--nodistill", "--pseudo_on=folds",
                  "--members=cross_encoder,bi_encoder,bm25", "--bi_encoder_epochs=1", "--correlation_limit=1.0"))
    for stage in ("folds", "pseudo"):
        settings = json.loads((root / stage / "fold_0" / "run_settings.json").read_text())
        assert (settings["jit_compile"], settings["steps_per_execution"], settings["length_buckets"]) == (True, 2, [])
    frame, _ = load_esci(files[2], files[3], task="all", require_labels=False)
    ranker = load_ranker(str(root / "final"))
    expected = predict(ranker, frame)
    predictions = tmp_path / "preds.csv"
    subprocess.run([sys.executable, "-m", "trainers.predict", f"--model_dir={root / 'final'}", f"--examples={files[2]}",
                    f"--products={files[3]}", "--task=all", f"--output={predictions}"], cwd=REPO, check=True,
                   capture_output=True)
    np.testing.assert_allclose(pd.read_csv(predictions)["score"], expected.scores, atol=1e-6)
    subprocess.run([sys.executable, "-m", "trainers.export", f"--model_dir={root / 'final'}",
                    f"--export_dir={tmp_path / 'export'}"], cwd=REPO, check=True, capture_output=True)
    loaded = tf.saved_model.load(str(tmp_path / "export" / "1"))
    inputs = {k: tf.constant(v.astype(str)) for k, v in serving_inputs(frame).items()}  # the raw fields
    out = loaded.signatures["serving_default"](**inputs)
    for name, member in ranker.member_predictions(frame).items():  # each member's own score: float noise
        np.testing.assert_allclose(out[f"score_{name}"].numpy(), member.scores, rtol=1e-5, atol=1e-6)
    # The combination divides by each member's spread (tiny for this barely trained model).
    np.testing.assert_allclose(out["score"].numpy(), expected.scores, atol=5e-4)
    # rank: one query's products score as in serving_default.
    rows = (frame["query"] == frame["query"].iloc[0]).to_numpy()
    products = {k: tf.boolean_mask(v, rows) for k, v in inputs.items() if k not in ("query", "product_locale")}
    ranked = loaded.signatures["rank"](query=inputs["query"][0], product_locale=inputs["product_locale"][0], **products)
    np.testing.assert_allclose(ranked["score"].numpy(), out["score"].numpy()[rows], atol=1e-5)
    assert sorted(ranked["order"].numpy().tolist()) == list(range(int(rows.sum())))
    # Each training stage as one bagged ranker (what bench/quality's pipeline method scores).
    from esci_tf.recipe.pipeline import stage_bag

    assert stage_bag(str(root), "distill") is None  # --nodistill
    bag = stage_bag(str(root), "bi_encoder")
    singles = [load_ranker(str(root / "bi_encoder" / f"fold_{k}")).scores(frame) for k in range(2)]
    np.testing.assert_allclose(bag.scores(frame), np.mean(singles, axis=0), rtol=1e-5, atol=1e-6)


def test_out_of_fold_rows_come_from_the_model_that_did_not_see_them(files, tmp_path):
    frame, _ = load_esci(files[0], files[1], task="all")
    unlabeled, _ = load_esci(files[2], files[3], task="all", require_labels=False)
    pseudo = targets.pseudo_labels(unlabeled, np.full((len(unlabeled), 4), [0.9, 0.05, 0.03, 0.02]), 0.5)
    pseudo = targets.disjoint_ids(pseudo, frame)  # the two generated files number their rows alike
    assert not set(pseudo["example_id"]) & set(frame["example_id"])
    folds = targets.assign_recipe_folds(frame, 3, seed=0)
    base = RunConfig.from_flat({"backbone": "xlm_roberta", "backbone_config": json.loads(TINY), "max_length": 24,
                                "batch_size": 8, "steps": 2, "num_shards": 1, "progress_bar": False,
                                "strategy": "cpu", "output_dir": str(tmp_path)})
    labeled = targets.with_targets(frame, targets.distill_targets(frame["label"], np.full((len(frame), 4), np.nan), 0.7))
    model_set = tuning.train_folds(base, labeled, folds, (0, 1, 2), TemplateSettings(), str(tmp_path), extra_train=pseudo)
    oof = model_set.oof
    assert sorted(oof["example_id"]) == sorted(frame["example_id"])  # every pair once
    fold_of = dict(zip(frame["example_id"], folds))
    assert all(fold_of[e] == f for e, f in zip(oof["example_id"], oof["fold"]))
    for fold in range(3):
        trained = set(read_all(str(tmp_path / f"fold_{fold}" / "data" / "train-*"))["example_id"].tolist())
        held_out = set(frame.loc[folds == fold, "example_id"])
        assert not trained & held_out and held_out == set(oof.loc[oof["fold"] == fold, "example_id"])
        assert set(pseudo["example_id"]) <= trained  # pseudo pairs train, never evaluate
