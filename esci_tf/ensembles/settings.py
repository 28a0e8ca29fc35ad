"""trainers.ensemble's settings (no TensorFlow import: --help and the checks are instant)."""

import dataclasses
import os

from esci_tf.data.errors import FlagError
from esci_tf.recipe.config import MIN_LOCALE_QUERIES

BUILTIN_MEMBERS = ("bm25", "zero_shot")


@dataclasses.dataclass
class EnsembleSettings:
    """trainers.ensemble's settings (trainers/flags/ensemble_flags.py has each one's meaning)."""

    runs: tuple
    output_dir: str
    examples: str
    products: str
    members: tuple = ()
    ensemble_folds: int = 5
    correlation_limit: float = 0.98
    weight_step: float = 0.1
    min_locale_queries: int = MIN_LOCALE_QUERIES
    seed: int = 0
    bootstrap_samples: int = 1000
    min_list_size: int = 20
    on_bad_rows: str = "raise"

    def validate(self) -> "EnsembleSettings":
        """FlagError naming the flag of a setting that cannot work; returns self."""
        if not self.runs:
            raise FlagError("--runs: give at least one trainers.recipe --output_dir")
        if len({os.path.normpath(r) for r in self.runs}) != len(self.runs):
            raise FlagError(f"--runs={','.join(self.runs)}: a run is named twice")
        unknown = [m for m in self.members if m not in BUILTIN_MEMBERS]
        if unknown or len(set(self.members)) != len(self.members):
            raise FlagError(f"--members={','.join(self.members)}: distinct names of "
                            f"{', '.join(BUILTIN_MEMBERS)}")
        inside = [r for r in self.runs if os.path.normpath(self.output_dir) in
                  (os.path.normpath(r), os.path.normpath(os.path.join(r, "final")))]
        if inside:
            raise FlagError(f"--output_dir={self.output_dir} is run {inside[0]} or its final ranker")
        if self.ensemble_folds < 2:
            raise FlagError(f"--ensemble_folds={self.ensemble_folds}: the nested cross-validation needs at least 2")
        if not 0.0 < self.correlation_limit <= 1.0:
            raise FlagError(f"--correlation_limit={self.correlation_limit}: must be in (0, 1]")
        if not 0.0 < self.weight_step <= 0.5:
            raise FlagError(f"--weight_step={self.weight_step}: must be in (0, 0.5]")
        return self
