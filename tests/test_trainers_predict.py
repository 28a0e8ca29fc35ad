"""End to end on generated data: trainers.fit (parquet path) writes every output; trainers.predict
scores with the saved preprocessing, writes the columns and the submission order."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from esci_tf import decisions
from esci_tf.labels import LABELS, PROB_COLUMNS
from trainers import fit, predict

pytestmark = pytest.mark.slow  # trains a tiny run first

TINY_CONFIG = json.dumps({"num_layers": 2, "num_heads": 2, "hidden_dim": 32,
                          "intermediate_dim": 64})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    metrics = fit.run_with_args([
        "fit", "--synthetic_queries=24", "--eval_fraction=0.25", "--backbone=xlm_roberta",
        f"--backbone_config={TINY_CONFIG}", "--max_length=32", "--batch_size=16",
        "--steps=6", "--eval_every_steps=3", "--learning_rate=1e-3", "--noprogress_bar",
        "--num_shards=2", "--entity_markers", f"--output_dir={output_dir}"])
    return output_dir, metrics


def test_fit_writes_every_output(trained):
    output_dir, metrics = trained
    for name in ("metrics.json", "flags.txt", "eval_predictions.csv", "best_model.keras",
                 "best_model.json", "preprocessing.json", "eval_history.jsonl",
                 "data/data_info.json"):
        assert (output_dir / name).is_file(), name
    assert tf.io.gfile.glob(str(output_dir / "logs" / "*" / "events.out.tfevents*"))
    assert tf.train.latest_checkpoint(str(output_dir / "checkpoints")).endswith("ckpt-6")
    saved = json.loads((output_dir / "metrics.json").read_text())
    assert [h["step"] for h in saved["history"]] == [3, 6]
    final = saved["final"]
    for key in ("ndcg", "random_ndcg", "accuracy", "micro_f1", "macro_f1"):
        assert 0.0 <= final[key] <= 1.0, key
    assert set(final["per_locale"]) <= {"us", "es", "jp"} and final["per_locale"]
    assert saved["timing"]["examples_per_second"] > 0
    data = saved["data"]
    assert data["num_train"] + data["num_eval"] > 0 and data["num_eval_queries"] > 0
    # The eval slice is grouped by query: no query on both sides.
    preds = pd.read_csv(output_dir / "eval_predictions.csv")
    assert list(preds.columns[:5]) == ["example_id", "query_id", "product_id", "product_locale",
                                       "label"]
    assert len(preds) == data["num_eval"]
    text = (output_dir / "flags.txt").read_text()
    assert "--synthetic_queries=24" in text and "--entity_markers" in text
    template = json.loads((output_dir / "preprocessing.json").read_text())["template"]
    assert template["entity_markers"] and "entity_brands" in template


def test_predict_matches_eval_predictions_and_writes_submission(trained, tmp_path):
    output_dir, _ = trained
    data_dir = output_dir / "data"
    eval_rows = pd.read_csv(output_dir / "eval_predictions.csv")
    examples = pd.read_parquet(data_dir / "synthetic_examples.parquet")
    examples = examples[examples["example_id"].isin(eval_rows["example_id"])]
    examples_path = tmp_path / "examples.parquet"
    examples.to_parquet(examples_path, index=False)
    args = [f"--model_dir={output_dir}", f"--examples={examples_path}",
            f"--products={data_dir / 'synthetic_products.parquet'}", "--task=all"]

    scores = predict.run_with_args(["predict", *args, f"--output={tmp_path / 'p.csv'}"])
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == list(predict.OUTPUT_COLUMNS)
    assert len(written) == len(examples)
    # Same model, same preprocessing code as the TFRecords fit evaluated: same scores.
    merged = written.assign(example_id=examples["example_id"].to_numpy()).merge(
        eval_rows, on="example_id", suffixes=("", "_eval"))
    np.testing.assert_allclose(merged["score"], merged["score_eval"], atol=1e-5)
    np.testing.assert_allclose(written[["p_E", "p_S", "p_C", "p_I"]].sum(axis=1), 1.0, atol=1e-5)

    predict.run_with_args(["predict", *args, f"--output={tmp_path / 's.csv'}", "--submission"])
    submission = pd.read_csv(tmp_path / "s.csv")
    assert list(submission.columns) == ["query_id", "product_id"]
    expected = predict.submission_table(scores)
    pd.testing.assert_frame_equal(submission.astype(str), expected.astype(str))
    for _, group in scores.assign(rank=np.arange(len(scores))).groupby("query_id"):
        order = submission[submission["query_id"] == group["query_id"].iloc[0]]["product_id"]
        ranked = group.sort_values("score", ascending=False, kind="stable")["product_id"]
        assert list(order.astype(str)) == list(ranked.astype(str))


def test_task2_and_task3_files_decide_from_the_class_probabilities(trained, tmp_path, capsys):
    output_dir, _ = trained
    model_dir = tmp_path / "model"  # the run's model files (decisions.json is added below)
    shutil.copytree(output_dir, model_dir, ignore=shutil.ignore_patterns("checkpoints", "logs", "data"))
    examples, products = output_dir / "data" / "synthetic_examples.parquet", output_dir / "data" / "synthetic_products.parquet"
    args = [f"--model_dir={model_dir}", f"--examples={examples}", f"--products={products}", "--task=2"]
    written = predict.run_with_args(["predict", *args, f"--output={tmp_path / 'p.csv'}"])
    assert list(written.columns) == list(predict.OUTPUT_COLUMNS)  # no --submission: the scores, as before
    probabilities = written[list(PROB_COLUMNS)].to_numpy()
    file_rows = pd.read_parquet(examples)
    example_ids = file_rows.loc[file_rows["large_version"] == 1, "example_id"].tolist()
    assert len(example_ids) == len(written)

    # No decisions.json: argmax.
    task2 = predict.run_with_args(["predict", *args, f"--output={tmp_path / 't2.csv'}", "--submission"])
    assert list(task2.columns) == ["example_id", "esci_label"] and task2["example_id"].tolist() == example_ids
    assert task2["esci_label"].tolist() == [LABELS[k] for k in np.argmax(probabilities, axis=1)]

    # A decisions.json: its rule. Complement 50 nats up wins every pair; P(S) >= its median.
    threshold = float(np.median(probabilities[:, 1]))
    decisions.save(str(model_dir), decisions.DecisionRule((0.0, 0.0, 50.0, 0.0), threshold))
    task2 = predict.run_with_args(["predict", *args, f"--output={tmp_path / 't2.csv'}", "--submission"])
    assert task2["esci_label"].tolist() == ["complement"] * len(example_ids)
    # Task 3; says which rule decides (the command line's refusal: test_trainers_predict_stream.py).
    capsys.readouterr()
    task3 = predict.run_with_args(["predict", *args[:-1], "--task=3", "--submission", f"--output={tmp_path / 't3.csv'}"])
    assert f"task 3 decisions: {model_dir / 'decisions.json'} (task 2: priors" in capsys.readouterr().out
    assert list(task3.columns) == ["example_id", "substitute_label"] and task3["example_id"].tolist() == example_ids
    expected = np.where(probabilities[:, 1] >= threshold, "substitute", "no_substitute")
    assert task3["substitute_label"].tolist() == expected.tolist()
    assert 0 < (expected == "substitute").sum() < len(expected)


def test_submission_order_is_stable_within_ties():
    table = pd.DataFrame({"query_id": [2, 2, 1, 2, 1], "product_id": list("abcde"),
                          "score": [0.5, 0.9, 0.1, 0.5, 0.3]})
    ranked = predict.submission_table(table)
    assert ranked.values.tolist() == [[2, "b"], [2, "a"], [2, "d"], [1, "e"], [1, "c"]]


def test_predict_flags_are_checked(tmp_path):
    from absl import flags

    with pytest.raises(flags.Error, match="--model_dir"):
        predict.run_with_args(["predict", "--examples=x", "--products=y", "--output=z"])
    with pytest.raises(FileNotFoundError, match="--model_dir"):
        predict.run_with_args(["predict", f"--model_dir={tmp_path}", "--examples=x",
                               "--products=y", f"--output={tmp_path / 'o.csv'}"])


def test_a_rerun_with_the_same_locales_spelled_otherwise_continues_the_partial_file(tmp_path):
    """run_identity (what a partial file must match to be continued) holds --locales as parsed, so
    `--locales=US,jp` and `--locales=jp,us` name the same run."""
    import types

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "ranker.json").write_text("{}")
    for name in ("x.csv", "y.csv"):
        (tmp_path / name).write_text("a\n")
    settings = dict(model_dir=str(tmp_path / "model"), examples=str(tmp_path / "x.csv"),
                    products=str(tmp_path / "y.csv"), task="1", split="test", on_bad_rows="raise", batch_size=8,
                    chunk_size=16, runtime="keras")
    upper = predict.run_identity(types.SimpleNamespace(**settings, locales=["US", "jp"]))
    lower = predict.run_identity(types.SimpleNamespace(**settings, locales=["jp", "us"]))
    assert upper == lower and upper["locales"] == ["jp", "us"]
    assert predict.run_identity(types.SimpleNamespace(**settings, locales=["us"])) != upper
