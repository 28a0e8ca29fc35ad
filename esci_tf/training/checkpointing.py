"""Resumable training state and the best model of a run.

A training checkpoint (tf.train.CheckpointManager) holds every variable of the training model
(weights, and the random-seed state of its dropout layers), every optimizer variable (moments,
iteration counter, gradient accumulators) and the data position (batches consumed). The
training stream is deterministic for a given seed, so a resumed run skips it to that position
and continues exactly where the killed run left off.

The best model by eval NDCG goes to <output_dir>/best_model.keras (with best_model.json);
trainers.predict loads it with the run's preprocessing.json (esci_tf.preprocessing.frame_encoder).
"""

import os

import tensorflow as tf

from esci_tf import files

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
        self.manager = tf.train.CheckpointManager(self._checkpoint, directory, max_to_keep)

    def restore_latest(self) -> int:
        """Restore the newest checkpoint, if any; returns the data position (0 when fresh)."""
        latest = self.manager.latest_checkpoint
        if latest is None:
            return 0
        self._checkpoint.restore(latest).assert_consumed()
        return int(self.position.numpy())

    def save(self, position: int) -> str:
        """Save the current state as the state after `position` batches."""
        self.position.assign(position)
        return self.manager.save(checkpoint_number=position)


def read_best_info(output_dir: str) -> dict | None:
    """{"ndcg", "step", ...} of the best model saved so far, or None."""
    return files.read_json(os.path.join(output_dir, BEST_INFO), missing_ok=True)


def save_model(model, path: str) -> None:
    """model.save under a temporary name, then renamed: a kill never leaves a half-written file."""
    temporary = path[: -len(".keras")] + ".tmp.keras"
    model.save(temporary)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def save_final_model(model, output_dir: str, step: int) -> None:
    """Save `model` as the run's model when the run has no eval set to choose by."""
    save_model(model, os.path.join(output_dir, BEST_MODEL))
    files.write_json(os.path.join(output_dir, BEST_INFO), {"ndcg": None, "step": int(step), "selected": "final"})


def keep_if_best(model, output_dir: str, ndcg: float, step: int, extra: dict = None) -> bool:
    """Save `model` as best_model.keras when `ndcg` beats the saved best; True if saved."""
    best = read_best_info(output_dir)
    if best is not None and not ndcg > best["ndcg"]:
        return False
    save_model(model, os.path.join(output_dir, BEST_MODEL))
    files.write_json(os.path.join(output_dir, BEST_INFO), {"ndcg": float(ndcg), "step": int(step), **(extra or {})})
    return True
