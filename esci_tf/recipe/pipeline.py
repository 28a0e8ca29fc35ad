"""run_recipe: the paper's stages, each into R/<stage>/, each skipped when done with the same settings.

1. folds: query-grouped folds (esci_tf.recipe.targets), recorded per query in
   folds/fold_assignment.csv (esci_tf.recipe.fold_assignment); one fine-tune per trained fold;
   the out-of-fold class probabilities of every pair of a trained fold (folds/oof.csv).
2. distill (--distill): targets = hard_label_weight x (smoothed) label + the rest x out-of-fold
   probabilities; a fine-tune on every pair (--distill_on=all) or per fold (=folds).
3. pseudo (--pseudo_examples/--pseudo_products): the previous stage's models score the unlabeled
   pairs; those above --pseudo_threshold join the training pairs with their probabilities as
   soft labels; retrained like distill. Pseudo pairs are never evaluated.
4. ensemble: members (--members: the last stage's cross-encoder, BM25, zero-shot cosine, other
   model directories) with weights fitted on out-of-fold scores (esci_tf.recipe.ensemble_fit),
   saved as R/final/, a ranker directory trainers.predict and trainers.export take; and the tasks
   2 and 3 decision rule (esci_tf.decisions) fitted on the out-of-fold class probabilities of the
   last cross-encoder stage that has them, saved as R/final/decisions.json.
5. student (--student_layers): the last cross-encoder stage distilled into a smaller cross-encoder,
   one per trained fold, bagged as R/student (esci_tf.recipe.student).
6. report: R/report.json and R/report.png (esci_tf.recipe.report).
Killed anywhere, a rerun continues: finished stages are skipped, the running one resumes its
fine-tunes from their checkpoints.
"""

import dataclasses
import time

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging

from esci_tf import decisions, files
from esci_tf.data.locales import keep_locales, select_locales
from esci_tf.data.reader import load_esci, read_table
from esci_tf.preprocessing.template import TemplateSettings
from esci_tf.labels import GAINS, one_hot
from esci_tf.recipe import ensemble_fit, fine_tune as tuning, fold_assignment, report as report_lib
from esci_tf.recipe import student as student_lib, targets as targets_lib
from esci_tf.recipe.config import RecipeConfig
from esci_tf.recipe.members import fit_stage_decisions, member_oof_scores, oof_stage, save_final
from esci_tf.recipe.runs import FOLDS_FILE, OOF_FILE, load_model_set as _load_model_set
from esci_tf.recipe.stages import Stage, fingerprint
from esci_tf.rankers.base import normalize_locales
from esci_tf.rankers.ensemble import BagRanker
from esci_tf.settings import LOCATION, NEUTRAL, RESULT, names
from esci_tf.training.config import recorded, settings as run_config_settings

TRAINING_STAGES = ("folds", "bi_encoder", "distill", "pseudo")  # the stages that train models, in order


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


# Fine-tune settings the recipe decides itself for every fine-tune (the data source and the
# evaluation split: its folds; which model is kept: the last), so they key no stage.
SET_BY_RECIPE = ("synthetic_queries", "eval_split", "eval_fraction", "select_best")


def _run_settings(config: RecipeConfig) -> dict:
    """The fine-tune settings the stages depend on, by their roles (esci_tf.settings): the result
    and neutral ones, not the input files (keyed by content), nor how one invocation runs (LOCAL:
    where it writes, whether it resumes, what it prints), nor SET_BY_RECIPE."""
    keyed = set(names(run_config_settings(), RESULT, NEUTRAL, LOCATION)) - set(SET_BY_RECIPE)
    return recorded({name: value for name, value in config.run.flat().items() if name in keyed})


def _write_csv(frame: pd.DataFrame, path: str) -> None:
    with files.atomic_path(path) as temporary, tf.io.gfile.GFile(temporary, "w") as stream:
        frame.to_csv(stream, index=False)


def _bag(stage: Stage, model_set: tuning.ModelSet, batch_size: int):
    from esci_tf.rankers.cross_encoder import CrossEncoderRanker

    return BagRanker([CrossEncoderRanker.load(stage.path(d), batch_size) for d in model_set.directories])


def stage_bag(root: str, name: str) -> BagRanker | None:
    """The finished stage `name` of the recipe run in `root` as one ranker (its models, bagged);
    None when that stage has not finished."""
    from esci_tf.rankers.registry import load_ranker

    stage = Stage(root, name, {})
    if not tf.io.gfile.exists(stage.path("stage.json")):
        return None
    return BagRanker([load_ranker(stage.path(d)) for d in _load_model_set(stage).directories])


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
    augmentation: pd.DataFrame | None = None  # translated pairs (--augment_examples): training only


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
    augmentation = None
    if data.augment_examples is not None:
        from esci_tf.data.augmentation import load_augmentation

        augmentation, _ = load_augmentation(data.augment_examples, data.augment_products, task=data.task,
                                            on_bad_rows=data.on_bad_rows)
        _log(f"recipe: {len(augmentation)} translated pairs for training (each with its original query's fold)")
    return RecipeData(frame.reset_index(drop=True), products_table, template, pseudo_frame, augmentation)


def _keep_locales(frame: pd.DataFrame | None, locales, what: str) -> pd.DataFrame | None:
    if frame is None:
        return None
    kept, left_out = keep_locales(frame, locales)
    if left_out:
        _log(f"recipe: {left_out} {what} of locales outside --locales={','.join(locales)} left out")
    return kept.reset_index(drop=True)


def select_recipe_locales(config: RecipeConfig, data: RecipeData) -> RecipeData:
    """The data of --locales only (all of it when unset): the labeled pairs (a locale without any is
    an error naming the flag), the unlabeled and the translated pairs, and the catalog."""
    locales = config.run.data.locales
    if not locales:
        return data
    frame = select_locales(data.frame, locales, config.run.data.examples or "the recipe's labeled pairs")
    return dataclasses.replace(
        data, frame=frame.reset_index(drop=True), products_table=keep_locales(data.products_table, locales)[0],
        pseudo_frame=_keep_locales(data.pseudo_frame, locales, "unlabeled pairs (--pseudo_examples)"),
        augmentation=_keep_locales(data.augmentation, locales, "translated pairs (--augment_examples)"))


def recipe_folds(config: RecipeConfig, frame: pd.DataFrame) -> np.ndarray:
    """The fold of each labeled pair: drawn (esci_tf.recipe.targets), or --folds_from's."""
    if config.folds_from:
        return fold_assignment.folds_from(config.folds_from, frame, config.num_folds)
    return targets_lib.assign_recipe_folds(frame, config.num_folds, config.fold_seed)


@dataclasses.dataclass
class _Run:
    """One recipe run's state as its stages fill it in."""

    config: RecipeConfig
    data: RecipeData
    folds: np.ndarray
    progress: tuning.Progress
    stages: dict = dataclasses.field(default_factory=dict)  # the cross-encoder's training stages
    member_stages: dict = dataclasses.field(default_factory=dict)  # stages training other members
    previous: str = "folds"  # the last cross-encoder stage so far
    targets: np.ndarray | None = None  # the labeled pairs' training targets so far
    timing: dict = dataclasses.field(default_factory=dict)

    @property
    def root(self) -> str:
        return self.config.output_dir

    @property
    def base(self):
        """The fine-tunes' RunConfig: one final evaluation, no selection on the eval fold."""
        return self.config.run.replace(progress_bar=False, select_best=False, output_dir=self.root)

    @property
    def soft_base(self):
        """For soft targets, which carry their label smoothing already."""
        return self.base.replace(label_smoothing=0.0)

    def run_stage(self, name: str, settings: dict, body) -> Stage:
        """Stage `name`: skipped when done with these settings, else body(stage); timed."""
        stage = Stage(self.root, name, settings)
        start = time.perf_counter()
        if _prepare(stage):
            body(stage)
        self.timing[name] = time.perf_counter() - start
        return stage


def run_recipe(config: RecipeConfig, data: RecipeData | None = None) -> dict:
    """Run (or continue) every stage on the config's files (or on `data`); returns the report
    (also R/report.json)."""
    config.validate(files=data is None)
    data = select_recipe_locales(config, data or load_recipe_data(config))
    tf.io.gfile.makedirs(config.output_dir)
    start = time.perf_counter()
    frame = data.frame
    num_train_stages = 1 + config.distill + (data.pseudo_frame is not None) + bool(config.student_layers)
    num_pairs = len(frame) + (len(data.augmentation) if data.augmentation is not None else 0)
    per_fold = len(config.folds_to_train) * num_pairs * (config.num_folds - 1) / config.num_folds
    run = _Run(config, data, recipe_folds(config, frame),
               tuning.Progress(per_fold * max(config.run.training.epochs, 1) * num_train_stages),
               targets=one_hot(frame["label"].to_numpy(), config.run.training.label_smoothing))
    _stage_folds(run)
    if "bi_encoder" in config.members:
        _stage_bi_encoder(run)
    if config.distill:
        _stage_distill(run)
    if data.pseudo_frame is not None:
        _stage_pseudo(run)
    ensemble = _stage_ensemble(run)
    student = _stage_student(run) if config.student_layers else None
    run.timing["total"] = time.perf_counter() - start
    return report_lib.write_report(config, frame, run.folds, run.stages, ensemble, run.timing, student)


def folds_settings(config: RecipeConfig, frame: pd.DataFrame, template: TemplateSettings,
                   augmentation: pd.DataFrame | None = None) -> dict:
    """What the folds stage's outputs depend on (and so every later stage's)."""
    settings = {"data": _frame_fingerprint(frame), "run": _run_settings(config), "num_folds": config.num_folds,
                "fold_seed": config.fold_seed, "train_folds": list(config.folds_to_train),
                "template": template.to_dict()}
    if augmentation is not None:  # by content: other translations rerun every stage
        settings["augmentation"] = _frame_fingerprint(augmentation)
    if config.folds_from:  # the run and the content of the assignment it took
        settings["folds_from"] = {"run": config.folds_from,
                                  "assignment": files.fingerprint(fold_assignment.path(config.folds_from))}
    return settings


def _stage_folds(run: _Run) -> None:
    """1. One fine-tune per trained fold; the out-of-fold probabilities."""
    config, frame = run.config, run.data.frame

    def body(stage):
        _log(f"recipe stage folds: {len(config.folds_to_train)} of {config.num_folds} folds")
        model_set = tuning.train_folds(run.base, frame, run.folds, config.folds_to_train, run.data.template,
                                       stage.directory, progress=run.progress, stage="folds",
                                       augmentation=run.data.augmentation)
        _write_csv(frame[["example_id"]].assign(fold=run.folds), stage.path(FOLDS_FILE))
        fold_assignment.write(run.root, frame["query_id"].to_numpy(), run.folds)
        _finish(stage, model_set)

    stage = run.run_stage("folds", folds_settings(config, frame, run.data.template, run.data.augmentation), body)
    if not tf.io.gfile.exists(fold_assignment.path(run.root)):  # a run finished before the file existed
        fold_assignment.write(run.root, frame["query_id"].to_numpy(), run.folds)
    run.stages["folds"] = (stage, _load_model_set(stage))


def _stage_bi_encoder(run: _Run) -> None:
    """1b. The bi-encoder member's fold models (bagged in R/final) and their out-of-fold scores."""
    config, model = run.config, run.config.run.model
    settings = vars(config.bi_encoder_settings()).copy()
    if settings["loss"] == RecipeConfig.bi_encoder_loss:  # the declared default, the only loss before
        del settings["loss"]                               # --bi_encoder_loss: older runs' stage key
    stage = run.run_stage("bi_encoder", {"data": _frame_fingerprint(run.data.frame),
                                         "folds": run.stages["folds"][0].settings,
                                         "settings": settings, "backbone": model.backbone,
                                         "checkpoint": model.checkpoint},
                          lambda stage: train_bi_encoders(config, run.data.frame, run.folds, stage,
                                                          run.data.augmentation))
    run.member_stages["bi_encoder"] = (stage, _load_model_set(stage))


def _retrain(run: _Run, stage: Stage, labeled: pd.DataFrame, mode: str, name: str, extra=None) -> tuning.ModelSet:
    """A soft-target fine-tune on every pair (mode "all") or one per fold (mode "folds")."""
    if mode == "all":
        train = labeled if extra is None else pd.concat([labeled, extra], ignore_index=True)
        return tuning.train_all(run.soft_base, train, run.data.template, stage.directory, run.progress, name,
                                augmentation=run.data.augmentation)
    return tuning.train_folds(run.soft_base, labeled, run.folds, run.config.folds_to_train, run.data.template,
                              stage.directory, extra_train=extra, progress=run.progress, stage=name,
                              augmentation=run.data.augmentation)


def _stage_distill(run: _Run) -> None:
    """2. Self-distillation: targets mix the (smoothed) label with out-of-fold probabilities."""
    config, frame = run.config, run.data.frame
    oof = tuning.oof_probabilities(frame, run.stages["folds"][1].oof)
    run.targets = targets_lib.distill_targets(frame["label"].to_numpy(), oof, config.hard_label_weight,
                                              config.run.training.label_smoothing)

    def body(stage):
        model_set = _retrain(run, stage, targets_lib.with_targets(frame, run.targets), config.distill_on, "distill")
        _finish(stage, model_set)

    stage = run.run_stage("distill", {"upstream": run.stages["folds"][0].fingerprint, "mode": config.distill_on,
                                      "hard_label_weight": config.hard_label_weight}, body)
    run.stages["distill"] = (stage, _load_model_set(stage))
    run.previous = "distill"


def _stage_pseudo(run: _Run) -> None:
    """3. Pseudo labels: the previous stage's models label the unlabeled pairs; retrain on both."""
    config, frame, unlabeled = run.config, run.data.frame, run.data.pseudo_frame

    def body(stage):
        teacher = _bag(*run.stages[run.previous], config.run.training.eval_batch_size or 128)
        pseudo = targets_lib.pseudo_labels(unlabeled, teacher.predict(unlabeled).probabilities, config.pseudo_threshold)
        _log(f"recipe stage pseudo: {len(pseudo)} of {len(unlabeled)} unlabeled pairs above {config.pseudo_threshold}")
        _write_csv(pseudo[["example_id", "query_id", "product_id", *targets_lib.TARGET_COLUMNS]],
                   stage.path("pseudo_labels.csv"))
        model_set = _retrain(run, stage, targets_lib.with_targets(frame, run.targets), config.pseudo_on, "pseudo",
                             extra=targets_lib.disjoint_ids(pseudo, frame))
        _finish(stage, model_set, {"pseudo_pairs": len(pseudo), "unlabeled_pairs": len(unlabeled)})

    stage = run.run_stage("pseudo", {"upstream": run.stages[run.previous][0].fingerprint, "mode": config.pseudo_on,
                                     "unlabeled": _frame_fingerprint(unlabeled),
                                     "threshold": config.pseudo_threshold}, body)
    run.stages["pseudo"] = (stage, _load_model_set(stage))
    run.previous = "pseudo"


def _stage_ensemble(run: _Run) -> Stage:
    """4. The members' out-of-fold scores, the fitted weights, R/final."""
    config, frame, unlabeled = run.config, run.data.frame, run.data.pseudo_frame
    every_stage = {**run.stages, **run.member_stages}

    def body(stage):
        member_scores, rankers = member_oof_scores(config, frame, run.data.products_table, unlabeled, run.stages,
                                                   run.previous, run.member_stages, run.folds)
        locales = frame["product_locale"].to_numpy()
        usable = ensemble_fit.covered_rows(member_scores, locales)  # e.g. the trained folds' pairs
        fitted = ensemble_fit.fit_ensemble(
            {n: s[usable] for n, s in member_scores.items()}, GAINS[frame["label"].to_numpy()[usable]],
            frame["query_id"].to_numpy()[usable], locales[usable], config.ensemble_folds, config.correlation_limit,
            config.weight_step, config.per_locale_weights, config.fold_seed, config.bootstrap_samples)
        _write_csv(frame[["example_id", "query_id", "product_locale"]].assign(
            **{f"score_{n}": s for n, s in member_scores.items()}), stage.path("member_scores.csv"))
        final = save_final(run.root, fitted, rankers, every_stage, config.run.data.locales)
        decided = _fit_decisions(run)
        if decided is not None:
            decisions.save(final, decided[1])
        stage.finish({**ensemble_fit.outputs(fitted),
                      "decisions": None if decided is None else {"stage": decided[0], **decided[1].to_dict()}})

    return run.run_stage("ensemble", {
        "upstream": {n: s.fingerprint for n, (s, _) in every_stage.items()}, "members": list(config.members),
        "ensemble_folds": config.ensemble_folds, "per_locale_weights": config.per_locale_weights,
        "correlation_limit": config.correlation_limit, "weight_step": config.weight_step,
        "decision_rule": decisions.RULE_VERSION,
        "unlabeled": _frame_fingerprint(unlabeled) if unlabeled is not None else None}, body)


def _stage_student(run: _Run) -> tuple:
    """5. The distilled student (esci_tf.recipe.student): (its Stage, its ModelSet)."""
    config, frame, unlabeled = run.config, run.data.frame, run.data.pseudo_frame
    teacher, targets_from = run.previous, oof_stage(run.stages, run.previous)
    batch_size = config.run.training.eval_batch_size or 128

    def body(stage):
        teacher_bag = _bag(*run.stages[teacher], batch_size)
        oof = tuning.oof_probabilities(frame, run.stages[targets_from][1].oof)
        labeled = targets_lib.with_targets(frame, student_lib.student_targets(
            frame["label"].to_numpy(), oof, config.run.training.label_smoothing))
        extra = None
        if unlabeled is not None:
            soft = targets_lib.soft_labeled(unlabeled, teacher_bag.predict(unlabeled).probabilities)
            extra = targets_lib.disjoint_ids(soft, frame)
        _log(f"recipe stage student: {config.student_layers} layers, soft labels of stage {targets_from} on "
             f"{len(frame)} pairs and of stage {teacher} on {0 if extra is None else len(extra)} unlabeled pairs")
        base = run.soft_base.replace(keep_layers=config.student_layers,
                                     **({"epochs": config.student_epochs, "steps": 0} if config.student_epochs else {}))
        model_set = tuning.train_folds(base, labeled, run.folds, config.folds_to_train, run.data.template,
                                       stage.directory, extra_train=extra, progress=run.progress, stage="student",
                                       augmentation=run.data.augmentation)
        student_bag = _bag(stage, model_set, batch_size)
        speed = student_lib.scoring_speed(student_bag, teacher_bag, frame)
        BagRanker.save(stage.directory, model_set.directories)  # R/student: a ranker directory
        _finish(stage, model_set, {"teacher": teacher, "targets_from": targets_from, "layers": config.student_layers,
                                   "teacher_layers": teacher_bag.members[0].model.backbone.num_layers,
                                   "speed": speed})

    stage = run.run_stage(student_lib.STAGE, {
        "upstream": {name: run.stages[name][0].fingerprint for name in sorted({teacher, targets_from})},
        "layers": config.student_layers, "epochs": config.student_epochs,
        "unlabeled": _frame_fingerprint(unlabeled) if unlabeled is not None else None,
        "speed_pairs": student_lib.SPEED_PAIRS}, body)
    return stage, _load_model_set(stage)


def _fit_decisions(run: _Run):
    """(stage, esci_tf.decisions.DecisionFit): the tasks 2 and 3 rule fitted on the out-of-fold
    class probabilities of the last cross-encoder stage that has them (None if none has)."""
    decided = fit_stage_decisions(run.data.frame, run.stages, run.previous, run.config.fold_seed)
    if decided is None:
        return None
    name, fit = decided
    numbers = "; ".join(f"{task} " + ", ".join(f"{k} {v:.4f}" for k, v in fit.micro_f1[task].items())
                        for task in ("task2", "task3"))
    _log(f"recipe stage ensemble: tasks 2 and 3 decided by {fit.rule.describe()} (fitted on the out-of-fold "
         f"probabilities of stage {name}); micro-F1 {numbers}")
    return name, fit


def train_bi_encoders(config, frame, folds, stage, augmentation=None) -> tuning.ModelSet:
    """One BiEncoderRanker per trained fold (saved as fold_<k>; trained on the other folds and
    their translations) and its out-of-fold scores. Killed, a rerun keeps the folds saved whole
    (their ranker.json is written last) and resumes the running one from its checkpoints
    (fold_<k>/checkpoints, every --checkpoint_every_steps steps, else 100)."""
    from esci_tf.rankers.base import RANKER_FILE
    from esci_tf.rankers.bi_encoder import BiEncoderRanker
    from esci_tf.training.bi_encoder_training import train_bi_encoder_ranker

    run, settings = config.run, config.bi_encoder_settings()
    directories, oof = [], []
    for fold in config.folds_to_train:
        start = time.perf_counter()
        train, held_out = tuning.fold_frames(frame, folds, fold, augmentation=augmentation)
        directory = f"fold_{fold}"
        if tf.io.gfile.exists(stage.path(directory, RANKER_FILE)):  # saved whole before a kill
            ranker = BiEncoderRanker.load(stage.path(directory))
            _log(f"recipe: stage bi_encoder, fold {fold} was done")
        else:
            ranker = train_bi_encoder_ranker(train, run.model.backbone, run.model.checkpoint, settings,
                                             backbone_config=run.model.backbone_config,
                                             checkpoint_dir=stage.path(directory, tuning.CHECKPOINT_DIR),
                                             checkpoint_every=run.runtime.checkpoint_every_steps or 100)
            ranker.locales = normalize_locales(run.data.locales)
            ranker.save(stage.path(directory))
            _log(f"recipe: stage bi_encoder, fold {fold} done in {time.perf_counter() - start:.0f} s")
        directories.append(directory)
        oof.append(pd.DataFrame({"example_id": held_out["example_id"].to_numpy(), "fold": fold,
                                 "score": ranker.scores(held_out)}))
    model_set = tuning.ModelSet(directories, pd.concat(oof, ignore_index=True))
    _finish(stage, model_set)
    return model_set
