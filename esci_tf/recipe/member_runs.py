"""A recipe with member runs (--member_runs): the paper's final ensemble across separately
configured runs from one command.

`run_with_members(config, members)`:
1. R's own stages (esci_tf.recipe.pipeline.run_recipe), so R is a finished run.
2. Each member run: another recipe run whose config the caller built (trainers.recipe: the
   command line plus the member's flagfile, whose flags win), trained into R/runs/<name>/ with R's
   fold assignment (--folds_from=R, so every run's out-of-fold scores come from models that never
   saw the query), without pseudo labels, member runs or a student of its own. Each is staged and resumable
   like R: a rerun skips what is done.
3. Stage `runs_ensemble`: R/final becomes the ensemble across R and its member runs
   (esci_tf.ensembles.build, what trainers.ensemble runs: each run's cross-encoder and bi-encoder,
   plus R's bm25 / zero_shot members; per-locale weights and the fallback to the best member
   chosen by nested cross-validation over queries; tasks 2 and 3 from the run cross-encoder
   scoring the most pairs), with its report in R/final/report.json and report.png. R/report.json
   stays R's own. The stage is skipped when every run's ensemble stage and the ensemble settings
   are unchanged.
"""

import dataclasses
import os

from esci_tf import files
from esci_tf.recipe.config import RecipeConfig
from esci_tf.recipe.members import FINAL_DIR
from esci_tf.recipe.report import REPORT_FILE
from esci_tf.recipe.runs import ENSEMBLE_STAGE
from esci_tf.recipe.stages import Stage

RUNS_DIR = "runs"
STAGE = "runs_ensemble"
BUILTIN = ("bm25", "zero_shot")  # R's members that join the ensemble across runs


def member_directory(config: RecipeConfig, name: str) -> str:
    return os.path.join(config.output_dir, RUNS_DIR, name)


def member_config(config: RecipeConfig, member: RecipeConfig, name: str) -> RecipeConfig:
    """`member` as R's member run: into R/runs/<name>, folds from R, no pseudo labels, members or
    student."""
    return dataclasses.replace(member, output_dir=member_directory(config, name), folds_from=config.output_dir,
                               num_folds=config.num_folds, pseudo_examples=None, pseudo_products=None,
                               member_runs=(), student_layers=0)


def ensemble_settings(config: RecipeConfig, names) -> "EnsembleSettings":  # noqa: F821
    from esci_tf.ensembles.settings import EnsembleSettings

    data = config.run.data
    return EnsembleSettings(
        runs=(config.output_dir, *(member_directory(config, n) for n in names)),
        output_dir=os.path.join(config.output_dir, FINAL_DIR), examples=data.examples, products=data.products,
        members=tuple(m for m in config.members if m in BUILTIN), ensemble_folds=config.ensemble_folds,
        correlation_limit=config.correlation_limit, weight_step=config.weight_step, seed=config.fold_seed,
        bootstrap_samples=config.bootstrap_samples, min_list_size=config.min_list_size,
        on_bad_rows=data.on_bad_rows)


def run_with_members(config: RecipeConfig, members: dict) -> dict:
    """Steps 1-3 of the module docstring; `members` is {name: RecipeConfig} (config.member_run_names()
    to the configs their flagfiles describe; made member runs here). Returns R's report with the
    ensemble across runs as its "ensemble" (the whole report: R/final/report.json)."""
    from esci_tf.ensembles.build import build_ensemble
    from esci_tf.recipe.pipeline import run_recipe

    report = run_recipe(config)
    for name, member in members.items():
        print(f"recipe: member run {name} into {member_directory(config, name)}", flush=True)
        run_recipe(member_config(config, member, name))
    settings = ensemble_settings(config, list(members))
    upstream = {root: Stage.finished(root, ENSEMBLE_STAGE).fingerprint for root in settings.runs}
    stage = Stage(config.output_dir, STAGE, {
        "runs": upstream, **{k: v for k, v in dataclasses.asdict(settings).items() if k not in ("runs", "output_dir")}})
    if stage.prepare():
        print(f"recipe stage {STAGE}: running", flush=True)
        across = build_ensemble(settings, own_run=config.output_dir)
        stage.finish({"ensemble": across["ensemble"]})
    else:
        print(f"recipe stage {STAGE}: done with the same settings, skipped", flush=True)
        across = files.read_json(os.path.join(settings.output_dir, REPORT_FILE))
    return {**report, "ensemble": across["ensemble"], "runs_ensemble_report": os.path.join(settings.output_dir,
                                                                                          REPORT_FILE)}
