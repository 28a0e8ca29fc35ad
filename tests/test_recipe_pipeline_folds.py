"""Out-of-fold predictions cover every training pair once, from the model that did not train on
it, and pseudo pairs train but are never evaluated."""

import json

import numpy as np
import pytest

from esci_tf.data.reader import load_esci
from esci_tf.preprocessing.template import TemplateSettings
from esci_tf.recipe import fine_tune as tuning, targets
from esci_tf.training.config import RunConfig
from recipe_fixtures import TINY
from esci_tf.records.dataset import read_all

pytestmark = pytest.mark.slow  # trains three tiny fold models


def test_out_of_fold_rows_come_from_the_model_that_did_not_see_them(recipe_files, tmp_path):
    frame, _ = load_esci(recipe_files[0], recipe_files[1], task="all")
    unlabeled, _ = load_esci(recipe_files[2], recipe_files[3], task="all", require_labels=False)
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
