"""Resumable training state and the best model of a run.

A training checkpoint (tf.train.CheckpointManager) holds every variable of the training model
(weights, and the random-seed state of its dropout layers), every optimizer variable (moments,
iteration counter, gradient accumulators) and the data position (batches consumed). The
training stream is deterministic for a given seed, so a resumed run skips it to that position
and continues exactly where the killed run left off.

The best model by eval NDCG goes to <output_dir>/best_model.keras (with best_model.json);
trainers.predict loads it with the run's preprocessing.json (esci_tf.preprocessing.frame_encoder).
Both are written under a temporary name and renamed (the model first, then the json naming its
step), and `model_file_problem` tells a resumed run whether the model file can be trusted.
"""

import os
import re
import zipfile

import tensorflow as tf
from absl import logging

from esci_tf import files
from esci_tf import faults
from esci_tf.training.config import ConfigError
from esci_tf.training.run_lock import is_chief

BEST_MODEL = "best_model.keras"
BEST_INFO = "best_model.json"


class TrainingCheckpoint:
    """Model + optimizer variables + data position, saved and restored by step number."""

    def __init__(self, directory: str, model, optimizer, max_to_keep: int = 2):
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self.position = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches_seen")
        self._checkpoint = tf.train.Checkpoint(
            model_variables=list(model.variables),
            optimizer_variables=list(optimizer.variables),
            position=self.position,
        )
        self.directory = directory
        if is_chief():
            remove_stale_writes(directory)
        self.manager = tf.train.CheckpointManager(self._checkpoint, directory, max_to_keep)
        faults.arm_checkpoint_write()

    def restore_latest(self) -> int:
        """Restore the newest readable checkpoint, if any; returns the data position (0 when
        fresh). A checkpoint that cannot be read (truncated, corrupt) is logged and the one
        before it is tried; when none can be read, ConfigError names the newest and its error."""
        candidates = list(reversed(self.manager.checkpoints))
        for index, path in enumerate(candidates):
            try:
                self._checkpoint.restore(path).assert_consumed()
                return int(self.position.numpy())
            except Exception as error:  # noqa: BLE001 - any failure to read makes it unusable; told below
                message = str(getattr(error, "message", error)).splitlines()[0]
                if index == len(candidates) - 1:
                    raise ConfigError(f"{candidates[0]}: the run's checkpoints cannot be read ({message}); "
                                      f"delete {self.directory} to restart the run from step 0") from error
                logging.warning("%s cannot be read (%s); trying %s", path, message, candidates[index + 1])
        return 0

    def save(self, position: int) -> str:
        """Save the current state as the state after `position` batches."""
        self.position.assign(position)
        return self.manager.save(checkpoint_number=position)


# tf.train.Checkpoint writes the shards of ckpt-N to ckpt-N_temp/ and merges them into place.
_STALE_WRITE = re.compile(r"^ckpt-\d+_temp$")


def remove_stale_writes(directory: str) -> list:
    """Deletes the ckpt-N_temp/ directories a save killed half-way leaves; returns them."""
    if not tf.io.gfile.isdir(directory):
        return []
    stale = [files.join(directory, name.rstrip("/")) for name in tf.io.gfile.listdir(directory)
             if _STALE_WRITE.match(name.rstrip("/"))]
    for path in stale:
        logging.info("removing %s (left by a checkpoint save that did not finish)", path)
        tf.io.gfile.rmtree(path)
    return stale


def read_best_info(output_dir: str) -> dict | None:
    """{"ndcg", "step", ...} of the best model saved so far, or None."""
    return files.read_json(os.path.join(output_dir, BEST_INFO), missing_ok=True)


def save_model(model, path: str) -> None:
    """model.save under a temporary name, then renamed: a kill never leaves a half-written file."""
    with files.atomic_path(path) as temporary:
        model.save(temporary)
        faults.point("best_model_write")


_EMPTY_ZIP_BYTES = 22  # the end-of-directory record alone


def model_file_problem(path: str) -> str | None:
    """Why a .keras file cannot be loaded ("missing", "not a .keras archive", ...), or None when
    it is a complete archive (zip directory and every member's CRC intact, config and weights
    present): a cheap check that needs no model code."""
    if not tf.io.gfile.exists(path):
        return "missing"
    size = tf.io.gfile.stat(path).length
    if size < _EMPTY_ZIP_BYTES:
        return f"not a .keras archive ({size} bytes)"
    try:
        with tf.io.gfile.GFile(path, "rb") as stream, zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, tf.errors.OpError) as error:
        return f"not a .keras archive ({error})"
    if bad is not None:
        return f"member {bad} is corrupt"
    if "config.json" not in names or not any(name.endswith(".weights.h5") for name in names):
        return "no config.json or weights in the archive"
    return None


def remove_best(output_dir: str, *also: str) -> None:
    """Forget the saved best model (best_model.json first, so no json names a missing model)."""
    for name in (BEST_INFO, BEST_MODEL, *also):
        path = os.path.join(output_dir, name)
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)


def save_final_model(model, output_dir: str, step: int) -> None:
    """Save `model` as the run's model when the run has no eval set to choose by."""
    files.write_json(os.path.join(output_dir, BEST_INFO), {"ndcg": None, "step": int(step), "selected": "final"})
    save_model(model, os.path.join(output_dir, BEST_MODEL))


def keep_if_best(model, output_dir: str, ndcg: float, step: int, extra: dict = None) -> bool:
    """Save `model` as best_model.keras when `ndcg` beats the saved best (or the saved best is
    of this same step: a resumed run redoing an evaluation rewrites it); True if saved."""
    best = read_best_info(output_dir)
    if best is not None and best["step"] != step and not ndcg > best["ndcg"]:
        return False
    # The json first: a kill before the model is in place leaves a json naming this step, which
    # a resumed run redoes (train_lib._reconcile_best), never an older json over a newer model.
    files.write_json(os.path.join(output_dir, BEST_INFO), {"ndcg": float(ndcg), "step": int(step), **(extra or {})})
    save_model(model, os.path.join(output_dir, BEST_MODEL))
    return True
