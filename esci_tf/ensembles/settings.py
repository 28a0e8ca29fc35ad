"""trainers.ensemble's settings (no TensorFlow import: --help and the checks are instant)."""

import dataclasses
import os

from esci_tf.errors import FlagError
from esci_tf.recipe.config import MIN_LOCALE_QUERIES, RecipeConfig, ensemble_fit_problem
from esci_tf.settings import INPUT, LOCAL, borrowed, setting
from esci_tf.training.config import DataConfig

BUILTIN_MEMBERS = ("bm25", "zero_shot")


@dataclasses.dataclass
class EnsembleSettings:
    """trainers.ensemble's settings, each declared with its help (esci_tf.settings)."""

    runs: tuple = setting((), "trainers.recipe --output_dirs whose members join: each run's cross-encoder and "
                          "bi-encoder (if it trained one). Their folds must be aligned (--folds_from).", role=INPUT)
    output_dir: str = setting(None, "E/: the ensemble's ranker directory (for trainers.predict and trainers.export), "
                              "with report.json and report.png.", role=LOCAL, required=True)
    examples: str = borrowed(DataConfig, "examples", required=True)
    products: str = borrowed(DataConfig, "products", required=True)
    members: tuple = setting((), "Members besides the runs': bm25, zero_shot (the first run's backbone and "
                             "checkpoint).")
    ensemble_folds: int = borrowed(RecipeConfig, "ensemble_folds")  # the recipe's ensemble settings
    correlation_limit: float = borrowed(RecipeConfig, "correlation_limit")
    weight_step: float = borrowed(RecipeConfig, "weight_step")
    min_locale_queries: int = setting(MIN_LOCALE_QUERIES, "Locales with at least this many queries get weights of "
                                      "their own (the others: the weights of the members covering every locale).")
    seed: int = setting(0, "Seed of the nested cross-validation's query parts.")
    bootstrap_samples: int = borrowed(RecipeConfig, "bootstrap_samples")
    min_list_size: int = borrowed(RecipeConfig, "min_list_size")
    on_bad_rows: str = borrowed(DataConfig, "on_bad_rows")

    def validate(self, own_run: str | None = None) -> "EnsembleSettings":
        """FlagError naming the flag of a setting that cannot work; returns self. `own_run`: the
        recipe run whose final ranker this ensemble replaces (its --member_runs)."""
        if not self.runs:
            raise FlagError("--runs: give at least one trainers.recipe --output_dir")
        if len({os.path.normpath(r) for r in self.runs}) != len(self.runs):
            raise FlagError(f"--runs={','.join(self.runs)}: a run is named twice")
        unknown = [m for m in self.members if m not in BUILTIN_MEMBERS]
        if unknown or len(set(self.members)) != len(self.members):
            raise FlagError(f"--members={','.join(self.members)}: distinct names of "
                            f"{', '.join(BUILTIN_MEMBERS)}")
        inside = [r for r in self.runs if r != own_run and os.path.normpath(self.output_dir) in
                  (os.path.normpath(r), os.path.normpath(os.path.join(r, "final")))]
        if inside:
            raise FlagError(f"--output_dir={self.output_dir} is run {inside[0]} or its final ranker")
        problem = ensemble_fit_problem(self.ensemble_folds, self.correlation_limit, self.weight_step)
        if problem:
            raise FlagError(problem)
        return self
