"""RecipeConfig: the paper's multi-stage recipe around one fine-tune configuration.

`run` is the RunConfig every fine-tune of the recipe starts from (its --examples/--products are
the training data; its output_dir is ignored: each fine-tune gets its own directory under the
recipe's). The recipe's own settings say how many folds, which stages run and how the ensemble
is fitted; every field has the name of its trainers.recipe flag.
"""

import dataclasses
import os
from typing import Optional

from esci_tf.choices import BI_ENCODER_LOSSES
from esci_tf.settings import INPUT, check_values, declared, names, setting
from esci_tf.training.config import ConfigError, RunConfig, pooled_layers_problem

STAGE_MODES = ("all", "folds")
BUILTIN_MEMBERS = ("cross_encoder", "bi_encoder", "bm25", "zero_shot")
EXTERNAL_PREFIX = "dir:"
MIN_LOCALE_QUERIES = 30  # a locale with fewer queries gets no weights of its own (esci_tf.recipe.ensemble_fit)


def ensemble_fit_problem(ensemble_folds: int, correlation_limit: float, weight_step: float) -> str | None:
    """What is wrong with the ensemble fit's settings (naming the flag), None when nothing is."""
    if ensemble_folds < 2:
        return f"--ensemble_folds={ensemble_folds}: the nested cross-validation needs at least 2"
    if not 0.0 < correlation_limit <= 1.0:
        return f"--correlation_limit={correlation_limit}: must be in (0, 1]"
    if not 0.0 < weight_step <= 0.5:
        return f"--weight_step={weight_step}: must be in (0, 0.5]"
    return None


@dataclasses.dataclass
class RecipeConfig:
    """The recipe's settings, each declared with its help (esci_tf.settings); `run` and
    `output_dir` are the fine-tunes' (trainers.fit's flags)."""

    run: RunConfig
    output_dir: Optional[str] = None
    num_folds: int = setting(3, "Query-grouped cross-validation folds of the training pairs (esci_tf.data.splits: "
                             "balanced by rows and locale; translations stay with their query).")
    train_folds: tuple = setting((), "Folds to train (empty: all), e.g. 0,3 for the paper's '2 of 7' bagging; the "
                                 "others only train the fold models.")
    fold_seed: int = setting(0, "Seed of the fold assignment (trainers.recipe: and of the ensemble's nested "
                             "cross-validation).")
    folds_from: Optional[str] = setting(
        None, "A trainers.recipe --output_dir R0: use its fold assignment (R0/folds/fold_assignment.csv) instead of "
        "drawing one, so the two runs' out-of-fold scores can be ensembled: each query keeps R0's fold (with "
        "--locales, a subset of R0's queries keeps theirs). Every query must be in R0's assignment and --num_folds "
        "must be R0's.")
    distill: bool = setting(True, "Self-distillation stage: retrain on hard_label_weight x label + the rest x "
                            "out-of-fold probabilities.")
    distill_on: str = setting("all", "all: one fine-tune on every pair; folds: one per fold (gives out-of-fold "
                              "scores).", choices=STAGE_MODES)
    hard_label_weight: float = setting(0.7, "Share of the (smoothed) hard label in the distillation targets (the "
                                       "paper: 0.7).")
    pseudo_examples: Optional[str] = setting(None, "Unlabeled examples (official schema; esci_label absent or "
                                             "ignored) for pseudo labels.", role=INPUT)
    pseudo_products: Optional[str] = setting(None, "Products of --pseudo_examples.", role=INPUT)
    pseudo_threshold: float = setting(0.7, "Pseudo pairs kept: largest class probability above this (soft labels).")
    pseudo_on: str = setting("all", "all: one fine-tune on training + pseudo pairs; folds: one per fold.",
                             choices=STAGE_MODES)
    members: tuple = setting(("cross_encoder", "bm25", "zero_shot"), "Ensemble members: cross_encoder (the last "
                             "stage's models), bi_encoder (a fine-tuned sentence encoder, one per fold, bagged), "
                             "bm25, zero_shot, dir:MODEL_DIR.")
    member_runs: tuple = setting((), "Flagfiles of member runs (the paper's ensemble across separately trained "
                                 "models): each is this command line plus the flagfile's flags (which win), trained "
                                 "into R/runs/<its base name> with this run's folds and no pseudo labels; R/final is "
                                 "then the ensemble across this run and them (trainers.ensemble's, with this run's "
                                 "bm25/zero_shot members), its report in R/final/report.json "
                                 "(esci_tf.recipe.member_runs).")
    bi_encoder_epochs: int = setting(4, "Passes over the query lists of each bi_encoder fold model.")
    bi_encoder_learning_rate: float = setting(3e-5, "Peak AdamW learning rate of the bi_encoder fold models.")
    bi_encoder_list_size: int = setting(16, "Products per bi_encoder training list (longer lists are cut).")
    bi_encoder_lists_per_batch: int = setting(4, "Query lists per bi_encoder training batch.")
    bi_encoder_loss: str = setting(BI_ENCODER_LOSSES[0], "The bi_encoder's loss over each query's list: "
                                   "pairwise_logistic (keras-rs) or cosent (one log-sum-exp over the batch's wrongly "
                                   "ordered pairs).", choices=BI_ENCODER_LOSSES)
    ensemble_folds: int = setting(5, "Query parts of the nested cross-validation that chooses the ensemble's weights "
                                  "(and its fallback to the best member) and estimates the ensemble against its best "
                                  "member.")
    per_locale_weights: bool = setting(False, "Fit weights per locale (locales with 30+ queries).")
    correlation_limit: float = setting(0.98, "A member correlating this much with a stronger member gets weight 0 "
                                       "(the two share the stronger one's weight).")
    weight_step: float = setting(0.1, "Grid step of the ensemble weights.")
    min_list_size: int = setting(20, "Queries with at least this many pairs count as long lists in the report.")
    bootstrap_samples: int = setting(1000, "Bootstrap resamples of the report's intervals.")
    student_layers: int = setting(
        0, "Distil the teacher (the last cross-encoder stage) into a student of this many of the backbone's layers "
        "(0: none): one per trained fold on the other folds' pairs (and the unlabeled pairs) with the teacher's "
        "out-of-fold class probabilities as soft labels, saved as R/student (a ranker directory; R/final stays the "
        "teacher's); the report puts its out-of-fold NDCG and scoring speed next to the teacher's "
        "(esci_tf.recipe.student).", bounds=(0, None))
    student_epochs: int = setting(0, "Passes over their pairs of each fold student (0: as the fine-tunes, --epochs or "
                                  "--steps); distillation on few pairs may need more than the teacher's.",
                                  bounds=(0, None))

    @property
    def folds_to_train(self) -> tuple:
        return tuple(self.train_folds) or tuple(range(self.num_folds))

    @property
    def pseudo(self) -> bool:
        return self.pseudo_examples is not None

    def validate(self, files: bool = True) -> "RecipeConfig":
        """ConfigError naming the flag of a setting that cannot work; returns self. files False:
        the caller brings the data (run_recipe(config, data=...))."""
        self.run.validate(data_source=False)
        self._check_student()
        data = self.run.data
        if files and (data.examples is None or data.products is None):
            raise ConfigError("the recipe trains on files: give --examples and --products")
        if not self.output_dir:
            raise ConfigError("--output_dir is required")
        if self.num_folds < 2:
            raise ConfigError(f"--num_folds={self.num_folds}: the recipe needs at least 2 folds")
        bad = [f for f in self.train_folds if not 0 <= int(f) < self.num_folds]
        if bad or len(set(self.train_folds)) != len(self.train_folds):
            raise ConfigError(f"--train_folds={','.join(map(str, self.train_folds))}: distinct folds in "
                              f"0..{self.num_folds - 1}")
        check_values(declared(RecipeConfig), self.settings(), ConfigError)  # the declared choices
        if (self.distill_on == "folds" or self.pseudo_on == "folds") and len(self.folds_to_train) != self.num_folds:
            raise ConfigError("--distill_on=folds / --pseudo_on=folds retrain every fold: leave --train_folds empty")
        if not 0.0 <= self.hard_label_weight <= 1.0:
            raise ConfigError(f"--hard_label_weight={self.hard_label_weight}: must be in [0, 1]")
        if (self.pseudo_examples is None) != (self.pseudo_products is None):
            raise ConfigError("give both --pseudo_examples and --pseudo_products, or neither")
        if not 0.0 < self.pseudo_threshold < 1.0:
            raise ConfigError(f"--pseudo_threshold={self.pseudo_threshold}: must be in (0, 1)")
        names = self.member_run_names()
        if len(set(names)) != len(names) or not all(names):
            raise ConfigError(f"--member_runs={','.join(self.member_runs)}: flagfiles with distinct base names "
                              "(each names its run, R/runs/<name>)")
        if self.member_runs and (self.run.data.examples is None or self.run.data.products is None):
            raise ConfigError("--member_runs: the runs' ensemble reads its pairs from --examples and --products")
        unknown = [m for m in self.members if m not in BUILTIN_MEMBERS and not m.startswith(EXTERNAL_PREFIX)]
        if unknown or not self.members or len(set(self.members)) != len(self.members):
            raise ConfigError(f"--members={','.join(self.members)}: distinct names of {', '.join(BUILTIN_MEMBERS)} "
                              f"or {EXTERNAL_PREFIX}MODEL_DIR")
        problem = ensemble_fit_problem(self.ensemble_folds, self.correlation_limit, self.weight_step)
        if problem:
            raise ConfigError(problem)
        return self

    def teacher_layers(self) -> Optional[int]:
        """The layers of the recipe's cross-encoders (--keep_layers, else the backbone's; None when
        its files do not say)."""
        from esci_tf.training.config import backbone_layers

        return self.run.model.keep_layers or backbone_layers(self.run.model)

    def _check_student(self) -> None:
        if not self.student_layers:
            return
        teacher = self.teacher_layers()
        if teacher is not None and self.student_layers >= teacher:
            raise ConfigError(f"--student_layers={self.student_layers}: the student must have fewer layers than "
                              f"its teacher's {teacher}")
        problem = pooled_layers_problem(self.run.model, self.student_layers, "--student_layers")
        if problem:
            raise ConfigError(problem)

    def member_run_names(self) -> tuple:
        """Each --member_runs flagfile's run name (R/runs/<name>): its base name without extension."""
        return tuple(os.path.splitext(os.path.basename(f.rstrip("/")))[0] for f in self.member_runs)

    def bi_encoder_settings(self):
        """How the bi_encoder member's fold models fine-tune."""
        from esci_tf.training.bi_encoder_training import BiEncoderSettings

        return BiEncoderSettings(epochs=self.bi_encoder_epochs, learning_rate=self.bi_encoder_learning_rate,
                                 list_size=self.bi_encoder_list_size, lists_per_batch=self.bi_encoder_lists_per_batch,
                                 loss=self.bi_encoder_loss,
                                 precision=self.run.runtime.precision, seed=self.run.runtime.seed)

    def input_paths(self) -> dict:
        """{flag: path} of every file the recipe reads (cloud_paths.check_inputs): the run's and the
        recipe's own settings of role INPUT."""
        return {**self.run.input_paths(), **{name: getattr(self, name) for name in names(declared(RecipeConfig), INPUT)}}

    def settings(self) -> dict:
        """Every recipe setting but `run`, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "run"}
