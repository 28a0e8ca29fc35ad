"""The ensemble's members: their out-of-fold scores on the training pairs (what the weights are
fitted on) and R/final, the ensemble ranker directory with copies of the members it weights."""

import os

import numpy as np
import pandas as pd
import tensorflow as tf

from esci_tf.labels import ranking_score
from esci_tf.recipe import fine_tune as tuning
from esci_tf.recipe.config import EXTERNAL_PREFIX
from esci_tf.rankers.base import load_ranker, normalize_locales
from esci_tf.rankers.ensemble import BagRanker, EnsembleRanker

FINAL_DIR = "final"


def _log(message: str) -> None:
    print(message, flush=True)


def member_oof_scores(config, frame, products_table, pseudo_frame, stages, last_stage, member_stages):
    """({member: out-of-fold scores [N] on the training pairs, NaN where none}, {member: ranker
    to save in R/final or a callable building it})."""
    from esci_tf.rankers.bm25 import BM25Ranker
    from esci_tf.rankers.zero_shot import ZeroShotRanker

    scores, rankers = {}, {}
    for member in config.members:
        if member == "cross_encoder":
            oof_stage = next(name for name in (last_stage, "pseudo", "distill", "folds")
                             if name in stages and stages[name][1].oof is not None)
            probabilities = tuning.oof_probabilities(frame, stages[oof_stage][1].oof)
            scores[member] = np.where(np.isnan(probabilities).any(axis=1), np.nan,
                                      ranking_score(np.nan_to_num(probabilities)))
            rankers[member] = ("stage", last_stage)
            _log(f"recipe stage ensemble: cross_encoder weighted by the out-of-fold scores of stage {oof_stage}")
        elif member == "bi_encoder":
            oof = member_stages["bi_encoder"][1].oof.set_index("example_id")["score"]
            scores[member] = frame["example_id"].map(oof).to_numpy(np.float64)
            rankers[member] = ("stage", "bi_encoder")
        elif member == "bm25":
            catalogs = [products_table] + ([pseudo_frame] if pseudo_frame is not None else [])
            ranker = BM25Ranker.fit_catalog(pd.concat([c[["product_id", "product_locale", "product_title"]]
                                                       for c in catalogs], ignore_index=True))
            ranker.locales = normalize_locales(config.run.data.locales)  # its statistics are of these locales
            scores[member], rankers[member] = ranker.scores(frame), ranker
        elif member == "zero_shot":
            ranker = ZeroShotRanker(config.run.model.backbone, config.run.model.checkpoint)
            scores[member], rankers[member] = ranker.scores(frame), ranker
        else:  # dir:PATH, a ranker trained on other data (its scores here count as out-of-fold)
            path = member[len(EXTERNAL_PREFIX):]
            ranker = load_ranker(path)
            scores[member], rankers[member] = np.asarray(ranker.scores(frame), np.float64), ("dir", path)
    return scores, rankers


def _copy_tree(source: str, target: str) -> None:
    tf.io.gfile.makedirs(target)
    for name in tf.io.gfile.listdir(source):
        name = name.rstrip("/")
        if name in ("checkpoints", "data", "logs"):
            continue
        path = os.path.join(source, name)
        if tf.io.gfile.isdir(path):
            _copy_tree(path, os.path.join(target, name))
        else:
            tf.io.gfile.copy(path, os.path.join(target, name), overwrite=True)


def save_final(root, fitted, rankers, stages, locales=None) -> str:
    """R/final/: the fitted ensemble with copies of the members it weights (scoring only `locales`,
    the run's --locales, when given)."""
    final = os.path.join(root, FINAL_DIR)
    if tf.io.gfile.exists(final):
        tf.io.gfile.rmtree(final)
    used = sorted({n for w in fitted.weights.values() for n, v in w.items() if v})
    member_dirs = {}
    for name in used:
        target = os.path.join(final, "members", name.replace(":", "_").replace("/", "_"))
        member_dirs[name] = os.path.relpath(target, final)
        ranker = rankers[name]
        if isinstance(ranker, tuple) and ranker[0] == "stage":  # the stage's models, bagged
            stage, model_set = stages[ranker[1]]
            for directory in model_set.directories:
                _copy_tree(stage.path(directory), os.path.join(target, directory))
            BagRanker.save(target, model_set.directories)
        elif isinstance(ranker, tuple):  # another run's directory
            _copy_tree(ranker[1], target)
        else:
            ranker.save(target)
    weights = {locale: {n: v for n, v in w.items() if v} for locale, w in fitted.weights.items()}
    EnsembleRanker.save(final, member_dirs, weights, {n: fitted.normalization[n] for n in used}, locales)
    return final
