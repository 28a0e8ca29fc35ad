"""A finished trainers.recipe run read back from its directory R: what another run's ensemble
takes from it (trainers.ensemble, the recipe's dir:R members).

- Its stages: those its ensemble stage was built from (R/ensemble/stage.json's upstream), each
  with its models and out-of-fold probabilities (R/<stage>/oof.csv); a stage rerun since (another
  fingerprint) makes the run inconsistent and is refused. Its cross-encoder is its last training
  stage's models (pseudo, else distill, else folds), bagged, weighted by the out-of-fold scores of
  the first stage of (last, pseudo, distill, folds) that has them (esci_tf.recipe.members).
- Its training pairs: the example_ids of R/folds/folds.csv.
- Its fold assignment: R/folds/fold_assignment.csv (esci_tf.recipe.fold_assignment).
"""

import dataclasses
import os

import numpy as np
import pandas as pd
import tensorflow as tf

from esci_tf.errors import DataError
from esci_tf.recipe import fine_tune as tuning, fold_assignment
from esci_tf.recipe.stages import STAGE_FILE, Stage

OOF_FILE = "oof.csv"
FOLDS_FILE = "folds.csv"  # R/folds/folds.csv: example_id, fold of every training pair
CROSS_ENCODER_STAGES = ("folds", "distill", "pseudo")  # in training order
ENSEMBLE_STAGE = "ensemble"


def read_csv(path: str) -> pd.DataFrame:
    with tf.io.gfile.GFile(path) as stream:
        return pd.read_csv(stream)


def load_model_set(stage: Stage) -> tuning.ModelSet:
    """A finished stage's models and (when it has them) out-of-fold probabilities."""
    outputs = stage.outputs
    oof = read_csv(stage.path(OOF_FILE)) if outputs.get("oof") else None
    return tuning.ModelSet(outputs["directories"], oof)


def run_root(path: str) -> str | None:
    """The recipe run whose output `path` is (R itself or R/final), None for any other directory."""
    path = path.rstrip("/")
    for candidate in (path, os.path.dirname(path) if os.path.basename(path) == "final" else None):
        if candidate and tf.io.gfile.exists(fold_assignment.path(candidate)):
            return candidate
    return None


@dataclasses.dataclass
class FinishedRun:
    """A recipe run's stages, training pairs and fold assignment (see the module docstring)."""

    root: str
    stages: dict  # {stage name: (Stage, ModelSet)}, the training stages its ensemble was built from
    example_ids: np.ndarray  # its training pairs
    folds: pd.Series  # fold_assignment.read

    @property
    def last_stage(self) -> str:
        return [name for name in CROSS_ENCODER_STAGES if name in self.stages][-1]

    @property
    def cross_encoder_stages(self) -> dict:
        return {n: s for n, s in self.stages.items() if n in CROSS_ENCODER_STAGES}


def load_run(root: str) -> FinishedRun:
    """The finished recipe run in `root`; DataError (one line naming the path) when it is not one."""
    ensemble = Stage.finished(root, ENSEMBLE_STAGE)
    if ensemble is None:
        raise DataError("not a finished trainers.recipe run (its ensemble stage has not run)",
                        path=os.path.join(root, ENSEMBLE_STAGE, STAGE_FILE))
    stages = {}
    for name, recorded in ensemble.settings["upstream"].items():
        stage = Stage.finished(root, name)
        if stage is None or stage.fingerprint != recorded:
            raise DataError(f"stage {name} changed after the run's ensemble was fitted: rerun trainers.recipe on "
                            f"{root} to finish it", path=os.path.join(root, name, STAGE_FILE))
        stages[name] = (stage, load_model_set(stage))
    if "folds" not in stages:
        raise DataError("the run's ensemble records no folds stage", path=ensemble.path(STAGE_FILE))
    pairs = read_csv(stages["folds"][0].path(FOLDS_FILE))["example_id"].to_numpy()
    return FinishedRun(root, stages, pairs, fold_assignment.read(root))
