"""build_ensemble: an ensemble across recipe runs, E/ a ranker directory (trainers.ensemble).

1. Runs: each --runs directory is a finished trainers.recipe run (esci_tf.recipe.runs). Their
   fold assignments must be aligned (every query two runs share in the same fold, else a
   FlagError naming the first query in two folds: esci_tf.recipe.fold_assignment.check_aligned),
   so a pair's out-of-fold scores come from models that never saw its query, in every run.
2. Labeled pairs: the union of the runs' training pairs (their R/folds/folds.csv), read from
   --examples/--products, the file(s) the runs trained on (a run may have trained on a subset, e.g.
   some locales; a training pair missing from --examples is refused).
3. Members (esci_tf.ensembles.members): each run's cross-encoder and bi-encoder, plus --members
   (bm25, zero_shot); NaN where a member has no out-of-fold score.
4. Weights: esci_tf.recipe.ensemble_fit with per-locale weights (each locale over the members that
   cover it), nested cross-validation over queries; a member with out-of-fold scores for only some
   of a locale's pairs is refused (it would be weighted on pairs it has none for).
5. Tasks 2 and 3: of the runs' cross-encoders, the one scoring the most pairs (then the best
   NDCG) is E/'s classifier member (class probabilities where no weighted member gives them) and
   its out-of-fold probabilities fit E/decisions.json (esci_tf.decisions), as a recipe's R/final.
6. E/: the EnsembleRanker with copies of the members it weights and the classifier (ranker.json
   written last), E/report.json (with the tasks 2 and 3 micro-F1) and E/report.png
   (esci_tf.ensembles.report).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from esci_tf import decisions
from esci_tf.errors import DataError, FlagError
from esci_tf.data.reader import load_esci, read_table
from esci_tf.ensembles import members as members_lib, report as report_lib
from esci_tf.ensembles.settings import EnsembleSettings
from esci_tf.labels import GAINS
from esci_tf.recipe import ensemble_fit, fold_assignment, runs as runs_lib
from esci_tf.recipe.members import fit_stage_decisions, save_ensemble
from esci_tf.rankers.base import RANKER_FILE


def labeled_pairs(settings: EnsembleSettings, runs: dict) -> tuple:
    """(the runs' training pairs from --examples, with labels; the products table)."""
    products_table = read_table(settings.products)
    frame, _ = load_esci(settings.examples, settings.products, task="all", on_bad_rows=settings.on_bad_rows,
                         products_table=products_table)
    trained = np.unique(np.concatenate([run.example_ids for run in runs.values()]))
    missing = np.setdiff1d(trained, frame["example_id"].to_numpy())
    if len(missing):
        owner = next(root for root, run in runs.items() if missing[0] in set(run.example_ids.tolist()))
        raise DataError(f"example_id {missing[0]} of run {owner}'s training pairs is not a labeled pair here "
                        f"({len(missing)} are not): give the examples file the runs trained on",
                        path=settings.examples)
    return frame[frame["example_id"].isin(trained)].reset_index(drop=True), products_table


def collect(settings: EnsembleSettings, runs: dict, frame, products_table) -> tuple:
    """({member: out-of-fold scores [N]}, {member: ranker spec}, {stage key: (Stage, ModelSet)})."""
    scores, rankers, stages = {}, {}, {}
    for name, run in zip(members_lib.run_names(runs), runs.values()):
        run_scores, run_rankers, run_stages = members_lib.run_members(name, run, frame)
        scores.update(run_scores), rankers.update(run_rankers), stages.update(run_stages)
    for member in settings.members:
        scores[member], rankers[member] = members_lib.builtin_member(member, frame, products_table,
                                                                     next(iter(runs.values())))
    return scores, rankers, stages


def build_ensemble(settings: EnsembleSettings, own_run: str | None = None) -> dict:
    """Steps 1-5 of the module docstring; returns the report (also E/report.json). `own_run`: the
    recipe run (one of the runs) whose R/final this ensemble replaces (esci_tf.recipe.member_runs)."""
    settings.validate(own_run)
    runs = {root: runs_lib.load_run(root) for root in settings.runs}
    try:
        fold_assignment.check_aligned({root: run.folds for root, run in runs.items()})
    except ValueError as error:
        raise FlagError(f"--runs: {error}") from error
    frame, products_table = labeled_pairs(settings, runs)
    scores, rankers, stages = collect(settings, runs, frame, products_table)
    try:
        ensemble_fit.coverage(scores, frame["product_locale"].to_numpy(),
                              [f"example_id {e}" for e in frame["example_id"].to_numpy()])
        fitted = ensemble_fit.fit_ensemble(
            scores, GAINS[frame["label"].to_numpy()], frame["query_id"].to_numpy(), frame["product_locale"].to_numpy(),
            settings.ensemble_folds, settings.correlation_limit, settings.weight_step, per_locale=True,
            seed=settings.seed, bootstrap_samples=settings.bootstrap_samples,
            min_locale_queries=settings.min_locale_queries)
    except ValueError as error:
        raise FlagError(f"--runs: {error}") from error
    tf.io.gfile.makedirs(settings.output_dir)
    ranker_file = os.path.join(settings.output_dir, RANKER_FILE)
    if tf.io.gfile.exists(ranker_file):  # a rerun: E/ is unfinished until its ranker.json is written again
        tf.io.gfile.remove(ranker_file)
    classifier = probability_member(scores, fitted)
    decided = None
    if classifier is not None:  # tasks 2 and 3 from its out-of-fold class probabilities
        run = dict(zip(members_lib.run_names(runs), runs.values()))[classifier[: -len(".cross_encoder")]]
        found = fit_stage_decisions(frame, run.cross_encoder_stages, run.last_stage, settings.seed)
        decided = None if found is None else found[1]
    report = report_lib.write_report(
        settings.output_dir, frame, scores, fitted,
        {root: {"name": name, "stages": list(run.stages), "training_pairs": int(len(run.example_ids))}
         for name, (root, run) in zip(members_lib.run_names(runs), runs.items())},
        {k: v for k, v in dataclasses.asdict(settings).items() if k != "output_dir"},
        settings.min_list_size, settings.bootstrap_samples,
        None if decided is None else {"stage": classifier, **decided.to_dict()})
    if decided is not None:
        decisions.save(settings.output_dir, decided)
    save_ensemble(settings.output_dir, fitted.weights, fitted.normalization, rankers, stages, classifier=classifier)
    return report


def probability_member(scores: dict, fitted) -> str | None:
    """The cross-encoder member E/ takes class probabilities from on rows no weighted member
    classifies (tasks 2 and 3): of the runs' cross-encoders, the one with out-of-fold scores on
    the most pairs, then the best NDCG; None when no run has one."""
    names = [n for n in scores if n.endswith(".cross_encoder")]
    return max(names, key=lambda n: (int(np.isfinite(np.asarray(scores[n], np.float64)).sum()),
                                     fitted.member_ndcg.get(n, -1.0)), default=None)


