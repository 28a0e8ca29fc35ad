"""run_recipe: the paper's stages, each into R/<stage>/, each skipped when done with the same settings.

1. folds: query-grouped folds (esci_tf.recipe.targets); one fine-tune per trained fold; the
   out-of-fold class probabilities of every pair of a trained fold (folds/oof.csv).
2. distill (--distill): targets = hard_label_weight x (smoothed) label + the rest x out-of-fold
   probabilities; a fine-tune on every pair (--distill_on=all) or per fold (=folds).
3. pseudo (--pseudo_examples/--pseudo_products): the previous stage's models score the unlabeled
   pairs; those above --pseudo_threshold join the training pairs with their probabilities as
   soft labels; retrained like distill. Pseudo pairs are never evaluated.
4. ensemble: members (--members: the last stage's cross-encoder, BM25, zero-shot cosine, other
   model directories) with weights fitted on out-of-fold scores (esci_tf.recipe.ensemble_fit),
   saved as R/final/, a ranker directory trainers.predict and trainers.export take.
5. report: R/report.json and R/report.png (esci_tf.recipe.report).
Killed anywhere, a rerun continues: finished stages are skipped, the running one resumes its
fine-tunes from their checkpoints.
"""

import dataclasses
import os
import time

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging

from esci_tf.data.reader import load_esci, read_table
from esci_tf.data.template import TemplateSettings
from esci_tf.labels import GAINS, one_hot, ranking_score
from esci_tf.recipe import ensemble_fit, fine_tune as tuning, report as report_lib, targets as targets_lib
from esci_tf.recipe.config import EXTERNAL_PREFIX, RecipeConfig
from esci_tf.recipe.stages import Stage, fingerprint
from esci_tf.rankers.base import load_ranker
from esci_tf.rankers.ensemble import BagRanker, EnsembleRanker

FINAL_DIR = "final"
OOF_FILE = "oof.csv"


def _log(message: str) -> None:
    logging.info(message)
    print(message, flush=True)


def _prepare(stage: Stage) -> bool:
    """Stage.prepare with a progress line either way."""
    if stage.prepare():
        _log(f"recipe stage {stage.name}: running")
        return True
    _log(f"recipe stage {stage.name}: done with the same settings, skipped")
    return False


def _frame_fingerprint(frame: pd.DataFrame) -> str:
    return fingerprint(int(pd.util.hash_pandas_object(frame, index=False).sum()) % (1 << 62))


def _run_settings(config: RecipeConfig) -> dict:
    """The fine-tune settings the stages depend on (not where the run writes or how it logs)."""
    values = config.run.flat()
    for name in ("output_dir", "progress_bar", "examples", "products", "eval_split", "eval_fraction",
                 "train_tfrecords", "eval_tfrecords", "synthetic_queries", "select_best", "resume"):
        values.pop(name, None)
    return values


def _write_csv(frame: pd.DataFrame, path: str) -> None:
    with tf.io.gfile.GFile(path + ".tmp", "w") as stream:
        frame.to_csv(stream, index=False)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def _read_csv(path: str) -> pd.DataFrame:
    with tf.io.gfile.GFile(path) as stream:
        return pd.read_csv(stream)


def _load_model_set(stage: Stage) -> tuning.ModelSet:
    outputs = stage.outputs
    oof = _read_csv(stage.path(OOF_FILE)) if outputs.get("oof") else None
    return tuning.ModelSet(outputs["directories"], oof)


def _bag(stage: Stage, model_set: tuning.ModelSet, batch_size: int):
    from esci_tf.rankers.cross_encoder import CrossEncoderRanker

    return BagRanker([CrossEncoderRanker.load(stage.path(d), batch_size) for d in model_set.directories])


def _finish(stage: Stage, model_set: tuning.ModelSet, extra: dict | None = None) -> None:
    if model_set.oof is not None:
        _write_csv(model_set.oof, stage.path(OOF_FILE))
    tuning.prune(stage.directory, model_set)
    stage.finish({**model_set.to_dict(), "oof": model_set.oof is not None, **(extra or {})})


@dataclasses.dataclass
class RecipeData:
    """What the recipe trains on: the labeled pairs (a merged frame), their products table (BM25
    statistics, entity gazetteers), the template, and the unlabeled pairs for pseudo labels."""

    frame: pd.DataFrame
    products_table: pd.DataFrame
    template: TemplateSettings
    pseudo_frame: pd.DataFrame | None = None


def load_recipe_data(config: RecipeConfig) -> RecipeData:
    """The recipe's files, read and validated once."""
    data = config.run.data
    products_table = read_table(data.products)
    frame, report = load_esci(data.examples, data.products, task=data.task, on_bad_rows=data.on_bad_rows,
                              products_table=products_table)
    if report.counts:
        _log(f"recipe: dropped rows of the training files: {report.to_dict()['counts']}")
    template = TemplateSettings.for_catalog(products_table, data.field_style, data.prompt_tokens,
                                            data.entity_markers)
    pseudo_frame = None
    if config.pseudo:
        pseudo_frame, _ = load_esci(config.pseudo_examples, config.pseudo_products, task=data.task,
                                    on_bad_rows=data.on_bad_rows, require_labels=False)
    return RecipeData(frame.reset_index(drop=True), products_table, template, pseudo_frame)


def run_recipe(config: RecipeConfig, data: RecipeData | None = None) -> dict:
    """Run (or continue) every stage on the config's files (or on `data`); returns the report
    (also R/report.json)."""
    config.validate(files=data is None)
    data = data or load_recipe_data(config)
    frame, products_table, template, pseudo_frame = data.frame, data.products_table, data.template, data.pseudo_frame
    use_pseudo = pseudo_frame is not None
    root, run = config.output_dir, config.run
    tf.io.gfile.makedirs(root)
    start = time.perf_counter()
    base = run.replace(progress_bar=False, select_best=False, output_dir=root)
    labels = frame["label"].to_numpy()
    smoothing = run.training.label_smoothing
    soft_base = base.replace(label_smoothing=0.0)  # soft targets carry their smoothing already
    num_train_stages = 1 + config.distill + use_pseudo
    per_fold = len(config.folds_to_train) * len(frame) * (config.num_folds - 1) / config.num_folds
    progress = tuning.Progress(per_fold * max(run.training.epochs, 1) * num_train_stages)
    timing = {}

    # 1. folds
    folds = targets_lib.assign_recipe_folds(frame, config.num_folds, config.fold_seed)
    stage = Stage(root, "folds", {"data": _frame_fingerprint(frame), "run": _run_settings(config),
                                  "num_folds": config.num_folds, "fold_seed": config.fold_seed,
                                  "train_folds": list(config.folds_to_train), "template": template.to_dict()})
    stage_start = time.perf_counter()
    if _prepare(stage):
        _log(f"recipe stage folds: {len(config.folds_to_train)} of {config.num_folds} folds")
        model_set = tuning.train_folds(base, frame, folds, config.folds_to_train, template, stage.directory,
                                       progress=progress, stage="folds")
        _write_csv(frame[["example_id"]].assign(fold=folds), stage.path("folds.csv"))
        _finish(stage, model_set)
    timing["folds"] = time.perf_counter() - stage_start
    stages = {"folds": (stage, _load_model_set(stage))}  # the cross-encoder's training stages
    member_stages = {}  # stages that train other ensemble members
    previous = "folds"
    train_targets = one_hot(labels, smoothing)

    # 1b. bi-encoder fold models (an ensemble member of their own)
    if "bi_encoder" in config.members:
        stage = Stage(root, "bi_encoder", {"data": _frame_fingerprint(frame), "folds": stages["folds"][0].settings,
                                           "settings": vars(config.bi_encoder_settings()),
                                           "backbone": run.model.backbone, "checkpoint": run.model.checkpoint})
        stage_start = time.perf_counter()
        if _prepare(stage):
            train_bi_encoders(config, frame, folds, stage)
        timing["bi_encoder"] = time.perf_counter() - stage_start
        member_stages["bi_encoder"] = (stage, _load_model_set(stage))

    # 2. distill
    if config.distill:
        fold_oof = tuning.oof_probabilities(frame, stages["folds"][1].oof)
        train_targets = targets_lib.distill_targets(labels, fold_oof, config.hard_label_weight, smoothing)
        stage = Stage(root, "distill", {"upstream": stages["folds"][0].fingerprint, "mode": config.distill_on,
                                        "hard_label_weight": config.hard_label_weight})
        stage_start = time.perf_counter()
        if _prepare(stage):
            distill_frame = targets_lib.with_targets(frame, train_targets)
            if config.distill_on == "all":
                model_set = tuning.train_all(soft_base, distill_frame, template, stage.directory, progress, "distill")
            else:
                model_set = tuning.train_folds(soft_base, distill_frame, folds, config.folds_to_train, template,
                                               stage.directory, progress=progress, stage="distill")
            _finish(stage, model_set)
        timing["distill"] = time.perf_counter() - stage_start
        stages["distill"] = (stage, _load_model_set(stage))
        previous = "distill"

    # 3. pseudo
    if use_pseudo:
        stage = Stage(root, "pseudo", {"upstream": stages[previous][0].fingerprint, "mode": config.pseudo_on,
                                       "unlabeled": _frame_fingerprint(pseudo_frame),
                                       "threshold": config.pseudo_threshold})
        stage_start = time.perf_counter()
        if _prepare(stage):
            teacher = _bag(*stages[previous], run.training.eval_batch_size or 128)
            pseudo = targets_lib.pseudo_labels(pseudo_frame, teacher.predict(pseudo_frame).probabilities,
                                               config.pseudo_threshold)
            _log(f"recipe stage pseudo: {len(pseudo)} of {len(pseudo_frame)} unlabeled pairs above "
                 f"{config.pseudo_threshold}")
            _write_csv(pseudo[["example_id", "query_id", "product_id", *targets_lib.TARGET_COLUMNS]],
                       stage.path("pseudo_labels.csv"))
            pseudo = targets_lib.disjoint_ids(pseudo, frame)
            labeled = targets_lib.with_targets(frame, train_targets)
            if config.pseudo_on == "all":
                model_set = tuning.train_all(soft_base, pd.concat([labeled, pseudo], ignore_index=True), template,
                                             stage.directory, progress, "pseudo")
            else:
                model_set = tuning.train_folds(soft_base, labeled, folds, config.folds_to_train, template,
                                               stage.directory, extra_train=pseudo, progress=progress, stage="pseudo")
            _finish(stage, model_set, {"pseudo_pairs": len(pseudo), "unlabeled_pairs": len(pseudo_frame)})
        timing["pseudo"] = time.perf_counter() - stage_start
        stages["pseudo"] = (stage, _load_model_set(stage))
        previous = "pseudo"

    # 4. ensemble and R/final
    stage = Stage(root, "ensemble", {"upstream": {n: s.fingerprint for n, (s, _) in {**stages, **member_stages}.items()},
                                     "members": list(config.members), "check_fraction": config.check_fraction,
                                     "per_locale_weights": config.per_locale_weights,
                                     "correlation_limit": config.correlation_limit, "weight_step": config.weight_step,
                                     "unlabeled": _frame_fingerprint(pseudo_frame) if use_pseudo else None})
    stage_start = time.perf_counter()
    if _prepare(stage):
        member_scores, rankers = member_oof_scores(config, frame, products_table, pseudo_frame, stages, previous,
                                                   member_stages)
        usable = np.all([~np.isnan(s) for s in member_scores.values()], axis=0)
        fitted = ensemble_fit.fit_ensemble(
            {n: s[usable] for n, s in member_scores.items()}, GAINS[labels[usable]],
            frame["query_id"].to_numpy()[usable], frame["product_locale"].to_numpy()[usable],
            config.check_fraction, config.correlation_limit, config.weight_step, config.per_locale_weights,
            config.fold_seed, config.bootstrap_samples)
        _write_csv(frame[["example_id", "query_id", "product_locale"]].assign(
            **{f"score_{n}": s for n, s in member_scores.items()}), stage.path("member_scores.csv"))
        save_final(root, fitted, rankers, {**stages, **member_stages})
        stage.finish({"weights": fitted.weights, "normalization": {k: list(v) for k, v in fitted.normalization.items()},
                      "member_ndcg": fitted.member_ndcg, "dropped": {k: list(v) for k, v in fitted.dropped.items()},
                      "fit_weights": fitted.fit_weights, "check": fitted.check, "chosen": fitted.chosen})
    timing["ensemble"] = time.perf_counter() - stage_start
    timing["total"] = time.perf_counter() - start
    return report_lib.write_report(config, frame, folds, stages, stage, timing)


def train_bi_encoders(config, frame, folds, stage) -> tuning.ModelSet:
    """One BiEncoderRanker per trained fold (saved as fold_<k>) and its out-of-fold scores."""
    from esci_tf.rankers.bi_encoder import BiEncoderRanker

    run, settings = config.run, config.bi_encoder_settings()
    directories, oof = [], []
    for fold in config.folds_to_train:
        start = time.perf_counter()
        ranker = BiEncoderRanker.train(frame[folds != fold], run.model.backbone, run.model.checkpoint, settings,
                                       backbone_config=run.model.backbone_config)
        held_out = frame[folds == fold]
        directory = f"fold_{fold}"
        ranker.save(stage.path(directory))
        directories.append(directory)
        oof.append(pd.DataFrame({"example_id": held_out["example_id"].to_numpy(), "fold": fold,
                                 "score": ranker.scores(held_out)}))
        _log(f"recipe: stage bi_encoder, fold {fold} done in {time.perf_counter() - start:.0f} s")
    model_set = tuning.ModelSet(directories, pd.concat(oof, ignore_index=True))
    _finish(stage, model_set)
    return model_set


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


def save_final(root, fitted, rankers, stages) -> str:
    """R/final/: the fitted ensemble with copies of the members it weights."""
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
    EnsembleRanker.save(final, member_dirs, weights, {n: fitted.normalization[n] for n in used})
    return final
