"""trainers.ensemble's settings (no TensorFlow import: --help and the checks are instant)."""

import dataclasses
import os

from esci_tf.errors import FlagError
from esci_tf.recipe.config import MIN_LOCALE_QUERIES, RecipeConfig, ensemble_fit_problem

BUILTIN_MEMBERS = ("bm25", "zero_shot")


@dataclasses.dataclass
class EnsembleSettings:
    """trainers.ensemble's settings (trainers/flags/ensemble_flags.py has each one's meaning)."""

    runs: tuple
    output_dir: str
    examples: str
    products: str
    members: tuple = ()
    ensemble_folds: int = RecipeConfig.ensemble_folds  # the recipe's ensemble defaults
    correlation_limit: float = RecipeConfig.correlation_limit
    weight_step: float = RecipeConfig.weight_step
    min_locale_queries: int = MIN_LOCALE_QUERIES
    seed: int = 0
    bootstrap_samples: int = RecipeConfig.bootstrap_samples
    min_list_size: int = RecipeConfig.min_list_size
    on_bad_rows: str = "raise"

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
