"""The distilled student (trainers.recipe --student_layers): the layers it keeps of its teacher's
backbone, the student stage of a tiny recipe (trained on soft labels of the teacher, R/student
scored by trainers.predict, its numbers in the report, skipped on a rerun) and the flag errors."""

import json
import os

import keras_hub
import numpy as np
import pandas as pd
import pytest

from esci_tf.data.reader import load_esci
from esci_tf.labels import PROB_COLUMNS
from esci_tf.models import build_cross_encoder
from esci_tf.models.layer_selection import keep_layers, kept_layers
from esci_tf.rankers import load_ranker
from esci_tf.rankers.base import predict
from esci_tf.recipe.config import RecipeConfig
from esci_tf.records.builder import TARGET_COLUMNS
from esci_tf.training.config import ConfigError, RunConfig
from recipe_fixtures import TINY

BERT = dict(vocabulary_size=60, num_layers=4, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)


def _bert_checkpoint(directory) -> tuple:
    """A 4-layer BERT preset directory this test writes (weights drawn at random), and the backbone."""
    backbone = keras_hub.models.BertBackbone(**BERT)
    backbone.save_to_preset(str(directory))
    return str(directory), backbone


def test_keep_layers_copies_the_evenly_spread_layers_and_everything_outside_them(tmp_path):
    assert kept_layers(4, 2) == (0, 3) and kept_layers(4, 3) == (0, 2, 3) and kept_layers(6, 2) == (0, 5)
    checkpoint, teacher = _bert_checkpoint(tmp_path / "bert")
    weights = {w.path: w.numpy() for w in teacher.weights}
    # Through the fit-side model setting: the student of a checkpoint has 2 layers, its layer 1 the
    # checkpoint's layer 3, its embeddings and pooler the checkpoint's.
    student = build_cross_encoder("bert", checkpoint=checkpoint, keep_layers=2, num_special_tokens=0).backbone
    got = {w.path: w.numpy() for w in student.weights}
    assert student.num_layers == 2 and len(student.transformer_layers) == 2
    for path, value in got.items():
        source = path.replace("transformer_layer_1/", "transformer_layer_3/")
        np.testing.assert_array_equal(value, weights[source], err_msg=path)
    assert any(p.startswith("transformer_layer_1/") for p in got) and "pooled_dense/kernel" in got
    assert not np.array_equal(weights["transformer_layer_1/self_attention_layer/query/kernel"],
                              weights["transformer_layer_3/self_attention_layer/query/kernel"])
    assert keep_layers(teacher, 4) is teacher
    with pytest.raises(ValueError, match="keep_layers=5: the backbone has 4 transformer layers"):
        keep_layers(teacher, 5)


def test_keep_layers_beyond_the_checkpoint_and_student_layers_not_below_the_teacher_are_flag_errors(tmp_path):
    checkpoint, _ = _bert_checkpoint(tmp_path / "bert")
    run = RunConfig.from_flat({"backbone": "bert", "checkpoint": checkpoint, "synthetic_queries": 4,
                               "output_dir": str(tmp_path / "run")})
    run.replace(keep_layers=4).validate()
    with pytest.raises(ConfigError, match=r"^--keep_layers=5: the backbone \(.*bert\) has 4 transformer layers$"):
        run.replace(keep_layers=5).validate()
    with pytest.raises(ConfigError, match="--num_pooled_layers=4 with --keep_layers=2"):
        run.replace(keep_layers=2, pooling="weighted_layers").validate()
    recipe = RecipeConfig(run, output_dir=str(tmp_path / "R"))
    RecipeConfig(run, output_dir=str(tmp_path / "R"), student_layers=3).validate(files=False)
    for layers, teacher in ((4, 4), (9, 4)):
        with pytest.raises(ConfigError, match=f"^--student_layers={layers}: the student must have fewer layers than "
                                              f"its teacher's {teacher}$"):
            RecipeConfig(run, output_dir=recipe.output_dir, student_layers=layers).validate(files=False)
    with pytest.raises(ConfigError, match="^--student_layers=2: the student must have fewer layers than its "
                                          "teacher's 2$"):  # a teacher of 2 kept layers
        RecipeConfig(run.replace(keep_layers=2), output_dir=recipe.output_dir, student_layers=2).validate(files=False)


@pytest.mark.slow  # a tiny recipe: 2 fold models, 2 fold students
def test_student_stage_trains_on_soft_labels_predicts_reports_and_is_skipped_on_rerun(recipe_files, tmp_path, capsys, monkeypatch):
    from esci_tf.recipe.pipeline import run_recipe
    from esci_tf.recipe.student import describe

    root = tmp_path / "R"
    run = RunConfig.from_flat({
        "examples": recipe_files[0], "products": recipe_files[1], "task": "all", "backbone": "xlm_roberta",
        "backbone_config": json.loads(TINY), "max_length": 24, "batch_size": 8, "steps": 2, "learning_rate": 1e-3,
        "num_shards": 1, "strategy": "cpu", "progress_bar": False, "output_dir": str(root)})
    config = RecipeConfig(run, output_dir=str(root), num_folds=2, distill=False, bootstrap_samples=20,
                          min_list_size=5, members=("cross_encoder", "bm25"), student_layers=1, student_epochs=1,
                          pseudo_examples=recipe_files[2], pseudo_products=recipe_files[3])
    from esci_tf.recipe import pipeline

    trained = []  # the frames each training stage's fold fine-tunes get

    def train_folds(base, labeled, *args, extra_train=None, stage="", **kwargs):
        trained.append((stage, base, labeled, extra_train))
        return real_train_folds(base, labeled, *args, extra_train=extra_train, stage=stage, **kwargs)

    real_train_folds = pipeline.tuning.train_folds
    monkeypatch.setattr(pipeline.tuning, "train_folds", train_folds)
    report = run_recipe(config)
    student = report["student"]
    assert (student["layers"], student["teacher_layers"], student["teacher"], student["targets_from"]) == \
           (1, 2, "pseudo", "folds")  # pseudo trained on every pair: no out-of-fold probabilities
    assert student["ndcg"]["all"]["num_queries"] == student["teacher_ndcg"]["all"]["num_queries"] > 0
    delta = student["student - teacher"]["all"]
    assert delta["mean"] == pytest.approx(student["ndcg"]["all"]["mean"] - student["teacher_ndcg"]["all"]["mean"])
    speed = student["speed"]
    assert speed["student_pairs_per_second"] > 0 and speed["teacher_pairs_per_second"] > 0
    assert speed["ratio"] == pytest.approx(speed["student_pairs_per_second"] / speed["teacher_pairs_per_second"])
    assert (speed["student_models"], speed["teacher_models"]) == (2, 1) and speed["cpu_kind"]
    assert json.loads((root / "report.json").read_text())["student"] == json.loads(json.dumps(student))
    assert "out-of-fold NDCG" in describe(student)
    # The fold students: 1 layer, trained on the labeled pairs with the out-of-fold probabilities of
    # stage folds as targets (none from a model that trained on the pair), plus every unlabeled pair
    # with the teacher's (the pseudo stage's model) probabilities as targets.
    frame, _ = load_esci(recipe_files[0], recipe_files[1], task="all")
    unlabeled, _ = load_esci(recipe_files[2], recipe_files[3], task="all", require_labels=False)
    (stage, base, labeled, extra), = [t for t in trained if t[0] == "student"]
    assert base.model.keep_layers == 1 and base.training.label_smoothing == 0.0
    assert (base.training.epochs, base.training.steps) == (1, 0)  # --student_epochs, not the fine-tunes' --steps
    folds_oof = pd.read_csv(root / "folds" / "oof.csv").set_index("example_id")
    np.testing.assert_allclose(labeled[list(TARGET_COLUMNS)].to_numpy(),
                               folds_oof.loc[labeled["example_id"], list(PROB_COLUMNS)].to_numpy(), atol=1e-6)
    teacher = pipeline.stage_bag(str(root), "pseudo").predict(unlabeled).probabilities
    assert len(extra) == len(unlabeled) and extra["pseudo"].all()
    np.testing.assert_allclose(extra[list(TARGET_COLUMNS)].to_numpy(), teacher, atol=1e-5)
    assert not set(extra["example_id"]) & set(frame["example_id"])
    folds = pd.read_csv(root / "folds" / "folds.csv").set_index("example_id")["fold"]
    for fold in (0, 1):
        settings = json.loads((root / "student" / f"fold_{fold}" / "run_settings.json").read_text())
        assert settings["keep_layers"] == 1
        assert not (root / "student" / f"fold_{fold}" / "data").exists()  # pruned once the stage finished
    oof = pd.read_csv(root / "student" / "oof.csv")
    assert sorted(oof["example_id"]) == sorted(frame["example_id"])
    assert (oof.set_index("example_id")["fold"] == folds.loc[oof["example_id"]].to_numpy()).all()
    # R/student: a bag of the fold students that trainers.predict takes.
    ranker = load_ranker(str(root / "student"))
    assert ranker.kind == "bag" and [m.model.backbone.num_layers for m in ranker.members] == [1, 1]
    from trainers import predict as predict_main

    table = predict_main.run_with_args(["predict", f"--model_dir={root / 'student'}", f"--examples={recipe_files[2]}",
                                        f"--products={recipe_files[3]}", "--task=all",
                                        f"--output={tmp_path / 'preds.csv'}"])
    np.testing.assert_allclose(table["score"], predict(ranker, unlabeled).scores, atol=1e-6)
    # A rerun skips the stage (and keeps its numbers).
    finished = json.loads((root / "student" / "stage.json").read_text())["finished_at"]
    capsys.readouterr()
    again = run_recipe(config)
    assert "recipe stage student: done with the same settings, skipped" in capsys.readouterr().out
    assert json.loads((root / "student" / "stage.json").read_text())["finished_at"] == finished
    assert again["student"]["speed"] == student["speed"]
