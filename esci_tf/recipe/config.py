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
from esci_tf.training.config import ConfigError, RunConfig

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
    """The recipe's settings (see trainers/flags/recipe_flags.py for each one's meaning)."""

    run: RunConfig
    output_dir: Optional[str] = None
    num_folds: int = 3
    train_folds: tuple = ()
    fold_seed: int = 0
    folds_from: Optional[str] = None
    distill: bool = True
    distill_on: str = "all"
    hard_label_weight: float = 0.7
    pseudo_examples: Optional[str] = None
    pseudo_products: Optional[str] = None
    pseudo_threshold: float = 0.7
    pseudo_on: str = "all"
    members: tuple = ("cross_encoder", "bm25", "zero_shot")
    member_runs: tuple = ()  # flagfiles of member runs (esci_tf.recipe.member_runs)
    bi_encoder_epochs: int = 4
    bi_encoder_learning_rate: float = 3e-5
    bi_encoder_list_size: int = 16
    bi_encoder_lists_per_batch: int = 4
    bi_encoder_loss: str = "pairwise_logistic"
    ensemble_folds: int = 5
    per_locale_weights: bool = False
    correlation_limit: float = 0.98
    weight_step: float = 0.1
    min_list_size: int = 20
    bootstrap_samples: int = 1000

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
        for name in ("distill_on", "pseudo_on"):
            if getattr(self, name) not in STAGE_MODES:
                raise ConfigError(f"--{name}={getattr(self, name)!r}: expected one of {', '.join(STAGE_MODES)}")
        if (self.distill_on == "folds" or self.pseudo_on == "folds") and len(self.folds_to_train) != self.num_folds:
            raise ConfigError("--distill_on=folds / --pseudo_on=folds retrain every fold: leave --train_folds empty")
        if not 0.0 <= self.hard_label_weight <= 1.0:
            raise ConfigError(f"--hard_label_weight={self.hard_label_weight}: must be in [0, 1]")
        if (self.pseudo_examples is None) != (self.pseudo_products is None):
            raise ConfigError("give both --pseudo_examples and --pseudo_products, or neither")
        if not 0.0 < self.pseudo_threshold < 1.0:
            raise ConfigError(f"--pseudo_threshold={self.pseudo_threshold}: must be in (0, 1)")
        if self.bi_encoder_loss not in BI_ENCODER_LOSSES:
            raise ConfigError(f"--bi_encoder_loss={self.bi_encoder_loss!r}: expected one of {', '.join(BI_ENCODER_LOSSES)}")
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

    def settings(self) -> dict:
        """Every recipe setting but `run`, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "run"}
