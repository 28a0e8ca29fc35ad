"""The recipe's final ranker (cross-encoder, bi-encoder and BM25 members), trained with TPU-like
settings (XLA-compiled steps, steps_per_execution, fixed shapes), scores the same through the
library, trainers.predict and the exported SavedModel's serving_default and rank signatures."""

import json

import numpy as np
import pytest
import tensorflow as tf

from esci_tf.data.reader import load_esci
from esci_tf.rankers import load_ranker
from esci_tf.rankers.base import predict
from esci_tf.serving.export import serving_inputs
from recipe_fixtures import recipe_args, run_recipe

pytestmark = pytest.mark.slow  # a recipe trains several tiny models
# trainers/flags/tpu.flags' runtime settings on CPU: the XLA-compiled train step, several steps per
# compiled call and fixed [batch, max_length] shapes (no length buckets; training batches drop the
# last partial one), so the fine-tunes run the code path a TPU compiles.
TPU_LIKE = ("--jit_compile", "--steps_per_execution=2", "--length_buckets=")


def test_final_ranker_scores_the_same_through_predict_and_export(recipe_files, tmp_path):
    root = tmp_path / "run"
    # Every stage under TPU-like settings: folds, distill (on all pairs), pseudo (one per fold), the
    # bi_encoder member, the ensemble, then predict and export of R/final.
    run_recipe(recipe_args(recipe_files, root, *TPU_LIKE, "--distill_on=all", "--pseudo_on=folds",
                           "--members=cross_encoder,bi_encoder,bm25", "--bi_encoder_epochs=1", "--correlation_limit=1.0"))
    for stage, run in (("folds", "fold_0"), ("distill", "all"), ("pseudo", "fold_0")):
        settings = json.loads((root / stage / run / "run_settings.json").read_text())
        assert (settings["jit_compile"], settings["steps_per_execution"], settings["length_buckets"]) == (True, 2, [])
    frame, _ = load_esci(recipe_files[2], recipe_files[3], task="all", require_labels=False)
    ranker = load_ranker(str(root / "final"))
    expected = predict(ranker, frame)
    # trainers.predict and trainers.export in this process (their command lines have their own tests).
    from trainers import export, predict as predict_main

    table = predict_main.run_with_args(["predict", f"--model_dir={root / 'final'}", f"--examples={recipe_files[2]}",
                                        f"--products={recipe_files[3]}", "--task=all",
                                        f"--output={tmp_path / 'preds.csv'}"])
    np.testing.assert_allclose(table["score"], expected.scores, atol=1e-6)
    assert export.export(str(root / "final"), str(tmp_path / "export")) == str(tmp_path / "export" / "1")
    loaded = tf.saved_model.load(str(tmp_path / "export" / "1"))
    inputs = {k: tf.constant(v.astype(str)) for k, v in serving_inputs(frame).items()}  # the raw fields
    out = loaded.signatures["serving_default"](**inputs)
    for name, member in ranker.member_predictions(frame).items():  # each member's own score: float noise
        np.testing.assert_allclose(out[f"score_{name}"].numpy(), member.scores, rtol=1e-5, atol=1e-6)
    # The combination divides by each member's spread (tiny for this barely trained model).
    np.testing.assert_allclose(out["score"].numpy(), expected.scores, atol=5e-4)
    assert out["valid"].numpy().all()  # every query has text; an emoji-only one has none:
    emoji = loaded.signatures["serving_default"](**{k: v[:1] if k != "query" else tf.constant(["🎧🎧"])
                                                    for k, v in inputs.items()})
    assert emoji["valid"].numpy().tolist() == [False] and np.isfinite(emoji["score"].numpy()).all()
    # rank: one query's products score as in serving_default.
    rows = (frame["query"] == frame["query"].iloc[0]).to_numpy()
    products = {k: tf.boolean_mask(v, rows) for k, v in inputs.items() if k not in ("query", "product_locale")}
    ranked = loaded.signatures["rank"](query=inputs["query"][0], product_locale=inputs["product_locale"][0], **products)
    np.testing.assert_allclose(ranked["score"].numpy(), out["score"].numpy()[rows], atol=1e-5)
    assert sorted(ranked["order"].numpy().tolist()) == list(range(int(rows.sum())))
    # Each training stage as one bagged ranker (what bench/quality's pipeline method scores).
    from esci_tf.recipe.pipeline import stage_bag

    assert stage_bag(str(root), "no_such_stage") is None
    bag = stage_bag(str(root), "bi_encoder")
    singles = [load_ranker(str(root / "bi_encoder" / f"fold_{k}")).scores(frame) for k in range(2)]
    np.testing.assert_allclose(bag.scores(frame), np.mean(singles, axis=0), rtol=1e-5, atol=1e-6)
