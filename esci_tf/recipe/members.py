"""The ensemble's members: their out-of-fold scores on the training pairs (what the weights are
fitted on) and R/final, the ensemble ranker directory with copies of the members it weights.

A dir:PATH member is a ranker trained elsewhere; its scores count as out-of-fold on pairs it did
not train on. When PATH is another recipe run (R or R/final) that trained on some of these pairs,
its scores there would be in-sample: the run must be aligned with this one (every shared query
in the same fold, esci_tf.recipe.fold_assignment; else a ConfigError naming the query), and on
those pairs the member's scores are R/final's combination of R's members' out-of-fold scores
(R/ensemble/member_scores.csv with R/final's weights), NaN where R has none.
"""

import os

import numpy as np
import pandas as pd
import tensorflow as tf

from esci_tf.labels import ranking_score
from esci_tf.recipe import fine_tune as tuning
from esci_tf.recipe.config import EXTERNAL_PREFIX
from esci_tf.training.config import ConfigError
from esci_tf.rankers.base import RANKER_FILE, Prediction, normalize_locales, predict_covered
from esci_tf.rankers.ensemble import BagRanker, EnsembleRanker
from esci_tf.rankers.registry import load_ranker

FINAL_DIR = "final"
CLASSIFIER = "cross_encoder"  # the member R/final takes class probabilities from when no weighted member gives them


def _log(message: str) -> None:
    print(message, flush=True)


def oof_stage(stages, last_stage) -> str | None:
    """The cross-encoder stage whose out-of-fold probabilities stand for the final models: the
    last stage that has them (stages trained on every pair have none), None if no stage has."""
    return next((name for name in (last_stage, "pseudo", "distill", "folds")
                 if name in stages and stages[name][1].oof is not None), None)


def fit_stage_decisions(frame, stages: dict, last_stage: str, seed: int):
    """(stage name, esci_tf.decisions.DecisionFit): the tasks 2 and 3 rule fitted on the
    out-of-fold class probabilities of `oof_stage` over the pairs it scored; None if no stage has
    them. What R/final's (the recipe) and E/'s (trainers.ensemble) decisions.json hold."""
    from esci_tf import decisions

    name = oof_stage(stages, last_stage)
    if name is None:
        return None
    probabilities = tuning.oof_probabilities(frame, stages[name][1].oof)
    scored = ~np.isnan(probabilities).any(axis=1)
    return name, decisions.fit_decisions(probabilities[scored], frame["label"].to_numpy()[scored],
                                         frame["query_id"].to_numpy()[scored], seed=seed)


def cross_encoder_scores(frame, stages: dict, last_stage: str) -> tuple:
    """(out-of-fold ranking scores [N] of the cross-encoder, NaN where none; the stage they come
    from: `oof_stage`)."""
    weighted_by = oof_stage(stages, last_stage)
    probabilities = tuning.oof_probabilities(frame, stages[weighted_by][1].oof)
    return np.where(np.isnan(probabilities).any(axis=1), np.nan,
                    ranking_score(np.nan_to_num(probabilities))), weighted_by


def bi_encoder_scores(frame, model_set) -> np.ndarray:
    """Out-of-fold scores [N] of a bi_encoder stage, NaN where none."""
    return frame["example_id"].map(model_set.oof.set_index("example_id")["score"]).to_numpy(np.float64)


def run_final_scores(run, ranker, frame) -> np.ndarray:
    """R/final's out-of-fold score of each row of `frame` (its weights applied to R's members'
    out-of-fold scores, R/ensemble/member_scores.csv); NaN where R has none."""
    from esci_tf.recipe.runs import ENSEMBLE_STAGE, read_csv

    saved = read_csv(os.path.join(run.root, ENSEMBLE_STAGE, "member_scores.csv")).set_index("example_id")
    rows = frame["example_id"].isin(saved.index).to_numpy()
    scores = np.full(len(frame), np.nan)
    part = frame[rows]
    predictions = {name: Prediction(saved.loc[part["example_id"], f"score_{name}"].to_numpy(np.float64))
                   for name in ranker.used_members()}
    scores[rows] = ranker.combine(part, predictions).scores
    return scores


def external_scores(path: str, frame, query_folds: pd.Series, output_dir: str) -> tuple:
    """(scores [N] of the dir:PATH member on the training pairs, its ranker directory): see the
    module docstring; ConfigError when PATH is a run trained on these pairs and not aligned."""
    from esci_tf.recipe import fold_assignment, runs

    root = runs.run_root(path)
    directory = os.path.join(root, FINAL_DIR) if root is not None and path.rstrip("/") == root else path
    ranker = load_ranker(directory)
    shared = np.zeros(len(frame), bool)
    if root is not None:
        run = runs.load_run(root)
        shared = frame["example_id"].isin(run.example_ids).to_numpy()
    scores = np.full(len(frame), np.nan)
    if shared.any():
        try:
            fold_assignment.check_aligned({root: run.folds, output_dir: query_folds})
        except ValueError as error:
            raise ConfigError(f"--members={EXTERNAL_PREFIX}{path}: that run trained on {int(shared.sum())} of these "
                              f"pairs, so its scores there are in-sample, and {error}") from error
        scores[shared] = run_final_scores(run, ranker, frame[shared])
        _log(f"recipe stage ensemble: {EXTERNAL_PREFIX}{path} weighted by its out-of-fold scores on the "
             f"{int(shared.sum())} pairs it trained on")
    if not shared.all():
        scores[~shared] = predict_covered(ranker, frame[~shared]).scores
    return scores, directory


def member_oof_scores(config, frame, products_table, pseudo_frame, stages, last_stage, member_stages, folds):
    """({member: out-of-fold scores [N] on the training pairs, NaN where none}, {member: ranker
    to save in R/final or a callable building it}); `folds`: the fold of each row."""
    from esci_tf.rankers.bm25 import BM25Ranker
    from esci_tf.rankers.zero_shot import ZeroShotRanker

    scores, rankers = {}, {}
    for member in config.members:
        if member == "cross_encoder":
            scores[member], weighted_by = cross_encoder_scores(frame, stages, last_stage)
            rankers[member] = ("stage", last_stage)
            _log(f"recipe stage ensemble: cross_encoder weighted by the out-of-fold scores of stage {weighted_by}")
        elif member == "bi_encoder":
            scores[member] = bi_encoder_scores(frame, member_stages["bi_encoder"][1])
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
        else:  # dir:PATH
            query_folds = pd.Series(np.asarray(folds), index=frame["query_id"].to_numpy()).groupby(level=0).first()
            scores[member], directory = external_scores(member[len(EXTERNAL_PREFIX):], frame, query_folds,
                                                        config.output_dir)
            rankers[member] = ("dir", directory)
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
    classifier = CLASSIFIER if CLASSIFIER in rankers else None
    return save_ensemble(final, fitted.weights, fitted.normalization, rankers, stages, locales, classifier)


def save_ensemble(directory, weights, normalization, rankers, stages, locales=None, classifier=None) -> str:
    """An EnsembleRanker directory with copies of the members `weights` names (its ranker.json last,
    so a directory without it is unfinished): rankers {member: a ranker to save, ("stage", key of
    `stages`: its models bagged) or ("dir", a ranker directory to copy)}."""
    ranker_file = os.path.join(directory, RANKER_FILE)
    if tf.io.gfile.exists(ranker_file):
        tf.io.gfile.remove(ranker_file)
    if tf.io.gfile.exists(os.path.join(directory, "members")):
        tf.io.gfile.rmtree(os.path.join(directory, "members"))
    used = sorted({n for w in weights.values() for n, v in w.items() if v} | ({classifier} if classifier else set()))
    member_dirs = {}
    for name in used:
        target = os.path.join(directory, "members", name.replace(":", "_").replace("/", "_"))
        member_dirs[name] = os.path.relpath(target, directory)
        ranker = rankers[name]
        if isinstance(ranker, tuple) and ranker[0] == "stage":  # the stage's models, bagged
            stage, model_set = stages[ranker[1]]
            for model in model_set.directories:
                _copy_tree(stage.path(model), os.path.join(target, model))
            BagRanker.save(target, model_set.directories)
        elif isinstance(ranker, tuple):  # another run's directory
            _copy_tree(ranker[1], target)
        else:
            ranker.save(target)
    weights = {locale: {n: v for n, v in w.items() if v} for locale, w in weights.items()}
    EnsembleRanker.save(directory, member_dirs, weights, {n: normalization[n] for n in used}, locales, classifier)
    return directory
