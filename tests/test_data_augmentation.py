"""Translated pairs train and never leak: on the real code paths of trainers.fit (the eval split,
run_data.load_split_frames) and of trainers.recipe (its folds, fold fine-tunes and distillation),
no evaluation, test or out-of-fold set holds a translated pair, no translation of an evaluation
query trains, and every translation of a training query that may train does; one tiny fit trains
with them end to end, recording the augmentation files by content."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from absl import flags

from esci_tf.data import splits
from esci_tf.data.augmentation import ORIGINAL_EXAMPLE_ID, ORIGINAL_QUERY_ID, load_augmentation
from esci_tf.data.synthetic import write_esci_files
from esci_tf.data.translation.demo import demo_table_rows
from esci_tf.data.translation.table import TableTranslator, write_table
from esci_tf.labels import PROB_COLUMNS, one_hot
from esci_tf.recipe import fine_tune as tuning, pipeline, targets
from esci_tf.recipe.config import RecipeConfig
from esci_tf.training import run_data
from esci_tf.training.config import RunConfig
from run_fixtures import TINY_CONFIG
from esci_tf.records.builder import TARGET_COLUMNS
from trainers.translate import translate_files


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Generated files and their translations, official test queries included (split all)."""
    root = tmp_path_factory.mktemp("augmentation")
    examples, products = write_esci_files(24, 2, str(root / "data"))
    table = str(root / "table.parquet")
    write_table(demo_table_rows(examples, products, split="all"), table)
    translate_files(examples, products, str(root / "translated"), TableTranslator(table), split="all",
                    show_progress=False, echo=lambda line: None)
    return {"examples": examples, "products": products,
            "augment_examples": str(root / "translated" / "examples.parquet"),
            "augment_products": str(root / "translated" / "products.parquet")}


def _config(files, output_dir, **settings):
    values = dict(files, task="all", backbone="xlm_roberta", backbone_config=json.loads(TINY_CONFIG),
                  max_length=24, batch_size=8, num_shards=1, strategy="cpu", progress_bar=False,
                  output_dir=str(output_dir))
    values.update(settings)
    return RunConfig.from_flat(values).validate()


def _is_translated(frame: pd.DataFrame) -> np.ndarray:
    marked = frame[ORIGINAL_QUERY_ID].notna().to_numpy() if ORIGINAL_QUERY_ID in frame.columns else False
    return marked | frame["product_id"].str.contains("~").to_numpy()


def check_no_translation_leaks(train, held_out, translations):
    """The leakage rules on one (train, held_out) pair; returns the number of translations added."""
    assert not _is_translated(held_out).any()  # never evaluated
    added = train[_is_translated(train)]
    eval_ids = set(held_out["query_id"])
    assert not set(added[ORIGINAL_QUERY_ID]) & eval_ids  # a translation of an eval query never trains
    real = train[~_is_translated(train)]
    assert set(added[ORIGINAL_QUERY_ID]) <= set(real["query_id"])
    splits.check_no_leakage(train, held_out)  # by id and by normalised text
    assert train["example_id"].is_unique and not set(train["example_id"]) & set(held_out["example_id"])
    assert not set(added["query_id"]) & (set(real["query_id"]) | eval_ids)  # translated queries get their own ids
    # Everything that may train does: the translations of the training queries, but those whose
    # text equals an eval query's.
    of_train = translations[translations[ORIGINAL_QUERY_ID].isin(real["query_id"])]
    text_leaks = splits.leaked_rows(of_train.assign(query_id=-1), held_out).sum()
    assert len(added) == len(of_train) - text_leaks > 0
    assert translations[ORIGINAL_QUERY_ID].isin(eval_ids).any()  # there were eval translations to leave out
    return len(added)


@pytest.mark.parametrize("eval_split", ["fraction", "test"])
def test_fit_split_trains_on_translations_of_training_queries_only(files, tmp_path, eval_split):
    config = _config(files, tmp_path, eval_split=eval_split, eval_fraction=0.25)
    frames = run_data.load_split_frames(config, str(tmp_path))
    translations, _ = load_augmentation(files["augment_examples"], files["augment_products"], task="all")
    added = check_no_translation_leaks(frames.train, frames.eval, translations)
    counts = frames.info["augmentation"]
    assert counts["augment_pairs_added"] == added and counts["augment_pairs"] == len(translations)
    assert counts["augment_pairs_of_eval_queries"] == translations[ORIGINAL_QUERY_ID].isin(frames.eval["query_id"]).sum()
    if eval_split == "test":
        assert (frames.eval["split"] == "test").all() and not (frames.train["split"] == "test").any()


def test_recipe_folds_keep_translations_with_their_query(files, tmp_path, monkeypatch):
    recipe = RecipeConfig(run=_config(files, tmp_path), output_dir=str(tmp_path / "recipe"), num_folds=3,
                          distill_on="folds", members=("bm25",))
    data = pipeline.load_recipe_data(recipe)
    assert not _is_translated(data.frame).any()  # the recipe's pairs (oof, ensemble, report) are the originals
    seen = []

    def fake_fine_tune(base, train, eval_frame, template, run_dir, progress=None, what=""):
        """Records what a fine-tune gets and writes the predictions out_of_fold reads."""
        seen.append((what, train, eval_frame))
        os.makedirs(run_dir, exist_ok=True)
        probabilities = np.full((len(eval_frame), 4), 0.25)
        pd.DataFrame({"example_id": eval_frame["example_id"],
                      **dict(zip(PROB_COLUMNS, probabilities.T))}).to_csv(os.path.join(run_dir, "eval_predictions.csv"),
                                                                          index=False)
        return {}

    monkeypatch.setattr(tuning, "fine_tune", fake_fine_tune)
    folds = targets.assign_recipe_folds(data.frame, recipe.num_folds, recipe.fold_seed)
    run = pipeline._Run(recipe, data, folds, tuning.Progress(1),
                        targets=one_hot(data.frame["label"].to_numpy(), 0.0))
    pipeline._stage_folds(run)
    pipeline._stage_distill(run)
    assert [what for what, _, _ in seen] == [f"stage {s}, fold {k}" for s in ("folds", "distill") for k in range(3)]
    fold_of = dict(zip(data.frame["example_id"], folds))
    for what, train, held_out in seen:
        fold = int(what[-1])
        assert {fold_of[e] for e in held_out["example_id"]} == {fold}  # the fold alone is evaluated
        check_no_translation_leaks(train, held_out, data.augmentation)
        added = train[_is_translated(train)]
        assert {fold_of[e] for e in added[ORIGINAL_EXAMPLE_ID]} <= set(range(3)) - {fold}  # with their query's fold
        if what.startswith("stage distill"):  # a translation trains on its original pair's targets
            original = train.set_index("example_id").loc[added[ORIGINAL_EXAMPLE_ID], list(TARGET_COLUMNS)]
            np.testing.assert_array_equal(added[list(TARGET_COLUMNS)].to_numpy(), original.to_numpy())
    oof = pd.read_csv(os.path.join(recipe.output_dir, "folds", "oof.csv"))
    assert sorted(oof["example_id"]) == sorted(data.frame["example_id"])  # out of fold: the originals, once each


def test_fit_trains_with_translations_and_records_them(files, tmp_path):
    from trainers import fit

    args = ["fit", *(f"--{name}={path}" for name, path in files.items()), "--task=all", "--backbone=xlm_roberta",
            f"--backbone_config={TINY_CONFIG}", "--max_length=24", "--batch_size=16", "--steps=2",
            "--learning_rate=1e-3", "--warmup_steps=1", "--num_shards=1", "--strategy=cpu", "--noprogress_bar",
            "--eval_fraction=0.25", f"--output_dir={tmp_path}"]
    metrics = fit.run_with_args(args)
    info = metrics["data"]["augmentation"]
    assert metrics["data"]["num_train"] > info["augment_pairs_added"] > 0
    predictions = pd.read_csv(tmp_path / "eval_predictions.csv", dtype={"product_id": str})
    source = pd.read_parquet(files["examples"])
    assert set(predictions["example_id"]) <= set(source["example_id"])
    assert not predictions["product_id"].str.contains("~").any()
    recorded = json.loads((tmp_path / "run_settings.json").read_text())
    assert recorded["augment_examples"]["sha256"] and recorded["augment_products"]["sha256"]

    # Other translations are another run: a resume with them is refused, naming the file.
    changed = tmp_path / "fewer.parquet"
    pd.read_parquet(files["augment_examples"]).iloc[1:].to_parquet(changed)
    with pytest.raises(flags.Error, match="--augment_examples"):
        fit.run_with_args([a if not a.startswith("--augment_examples=") else f"--augment_examples={changed}"
                           for a in args])
