"""The recipe's fine-tunes: run_experiment on its own frames, one per fold or one on every pair.

A fold fine-tune trains on the other folds' rows (plus any extra rows, e.g. pseudo labels, and
the translations of those rows' queries: esci_tf.data.augmentation.training_rows, never one of
the fold's own queries) and is evaluated once, at the end, on its fold alone: those predictions
are the fold's out-of-fold class probabilities, from a model that never saw the rows nor their
translations. An all-pairs fine-tune has no eval set and
keeps its final model. Each fine-tune is a trainers.fit-style run directory (resumable from its
checkpoints); `prune` removes what only a resume needs once its stage is done.
"""

import dataclasses
import os
import time

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging

from esci_tf.data.augmentation import training_rows
from esci_tf.labels import PROB_COLUMNS
from esci_tf.training.run_data import DATA_DIR, SplitFrames
from esci_tf.training.train_lib import CHECKPOINT_DIR, PREDICTIONS_FILE, run_experiment


@dataclasses.dataclass
class ModelSet:
    """The models a training stage produced: one directory, or one per fold (bagged when they
    score), and their out-of-fold probabilities (example_id -> p_E..p_I) when trained per fold."""

    directories: list
    oof: pd.DataFrame | None = None

    def to_dict(self) -> dict:
        return {"directories": list(self.directories)}


class Progress:
    """Logs each fine-tune's end with the time left, estimated from the seconds per training pair
    so far and the pairs still to train."""

    def __init__(self, planned_pairs: int):
        self.planned_pairs = max(int(planned_pairs), 1)
        self.done_pairs, self.seconds = 0, 0.0

    def add(self, pairs: int, seconds: float, what: str) -> None:
        self.done_pairs += pairs
        self.seconds += seconds
        left = max(self.planned_pairs - self.done_pairs, 0) * self.seconds / max(self.done_pairs, 1)
        logging.info("recipe: %s done in %.0f s; about %.0f min of fine-tuning left", what, seconds, left / 60)
        print(f"recipe: {what} done in {seconds:.0f} s; about {left / 60:.0f} min of fine-tuning left", flush=True)


def fine_tune(base, train: pd.DataFrame, eval_frame: pd.DataFrame, template, run_dir: str, progress=None,
              what: str = "fine-tune") -> dict:
    """run_experiment of `base` on these frames in run_dir (one final evaluation); its metrics."""
    start = time.perf_counter()
    config = base.replace(output_dir=run_dir, select_best=False)
    metrics = run_experiment(config, frames=SplitFrames(train.reset_index(drop=True),
                                                        eval_frame.reset_index(drop=True), template))
    if progress is not None:
        progress.add(len(train) * max(config.training.epochs, 1), time.perf_counter() - start, what)
    return metrics


def out_of_fold(run_dir: str, eval_frame: pd.DataFrame, fold: int) -> pd.DataFrame:
    """example_id, fold, p_E..p_I of a fold fine-tune's evaluation, in eval_frame's order."""
    predictions = pd.read_csv(os.path.join(run_dir, PREDICTIONS_FILE)).set_index("example_id")
    missing = set(eval_frame["example_id"]) - set(predictions.index)
    if missing:
        raise RuntimeError(f"{run_dir}: no prediction for {len(missing)} eval rows, e.g. {sorted(missing)[:3]}")
    rows = predictions.loc[eval_frame["example_id"].to_numpy(), list(PROB_COLUMNS)].reset_index()
    rows.insert(1, "fold", fold)
    return rows


def with_augmentation(train: pd.DataFrame, held_out: pd.DataFrame, augmentation: pd.DataFrame | None) -> pd.DataFrame:
    """`train` plus the translated pairs of its queries (none of held_out's), which take their
    original pair's soft targets when `train` has them."""
    if augmentation is None or not len(augmentation):
        return train
    from esci_tf.records.builder import TARGET_COLUMNS

    rows, _ = training_rows(augmentation, train, held_out, inherit=TARGET_COLUMNS)
    return pd.concat([train, rows], ignore_index=True)


def fold_frames(frame: pd.DataFrame, folds: np.ndarray, fold: int, extra_train: pd.DataFrame | None = None,
                augmentation: pd.DataFrame | None = None) -> tuple:
    """(train, held_out) of one fold: the other folds' rows, extra_train and the translations of
    their queries; the fold's own rows, never a translated one."""
    train, held_out = frame[folds != fold], frame[folds == fold]
    if extra_train is not None and len(extra_train):
        train = pd.concat([train, extra_train], ignore_index=True)
    return with_augmentation(train, held_out, augmentation), held_out


def train_folds(base, frame: pd.DataFrame, folds: np.ndarray, fold_ids, template, stage_dir: str,
                extra_train: pd.DataFrame | None = None, progress=None, stage: str = "",
                augmentation: pd.DataFrame | None = None) -> ModelSet:
    """One fine-tune per fold in `fold_ids` (fold_frames: train on the other folds' rows, plus
    extra_train and translations; eval on the fold) and the out-of-fold probabilities of every
    trained fold's rows."""
    directories, oof = [], []
    for fold in fold_ids:
        train, held_out = fold_frames(frame, folds, fold, extra_train, augmentation)
        run_dir = os.path.join(stage_dir, f"fold_{fold}")
        fine_tune(base, train, held_out, template, run_dir, progress, f"stage {stage}, fold {fold}")
        directories.append(f"fold_{fold}")
        oof.append(out_of_fold(run_dir, held_out, fold))
    return ModelSet(directories, pd.concat(oof, ignore_index=True))


def train_all(base, frame: pd.DataFrame, template, stage_dir: str, progress=None, stage: str = "",
              augmentation: pd.DataFrame | None = None) -> ModelSet:
    """One fine-tune on every row and the translations (no eval set: its final model is kept)."""
    run_dir = os.path.join(stage_dir, "all")
    fine_tune(base, with_augmentation(frame, frame.iloc[:0], augmentation), frame.iloc[:0], template, run_dir,
              progress, f"stage {stage}, all pairs")
    return ModelSet(["all"])


def prune(stage_dir: str, model_set: ModelSet) -> None:
    """Remove the checkpoints and TFRecords of a finished stage's fine-tunes (only a resume needs
    them; the model directories keep best_model.keras and preprocessing.json)."""
    for directory in model_set.directories:
        for name in (CHECKPOINT_DIR, DATA_DIR):
            path = os.path.join(stage_dir, directory, name)
            if tf.io.gfile.exists(path):
                tf.io.gfile.rmtree(path)


def oof_probabilities(frame: pd.DataFrame, oof: pd.DataFrame | None) -> np.ndarray:
    """[N, 4] out-of-fold probabilities in frame's row order (NaN where a row has none)."""
    result = np.full((len(frame), len(PROB_COLUMNS)), np.nan)
    if oof is None:
        return result
    indexed = oof.set_index("example_id")
    present = frame["example_id"].isin(indexed.index).to_numpy()
    result[present] = indexed.loc[frame["example_id"].to_numpy()[present], list(PROB_COLUMNS)].to_numpy()
    return result
