"""trainers.fit: kill-and-resume equals an uninterrupted run; outputs; bad flags name the flag."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from run_fixtures import TINY_CONFIG, Kill, checkpoint_values, fit_args
from esci_tf.training import train_lib
from trainers import fit


@pytest.mark.slow
def test_kill_and_resume_reaches_the_same_weights(tiny_tfrecords, tmp_path):
    common = ("--steps=7", "--checkpoint_every_steps=2", "--eval_every_steps=4",
              "--gradient_accumulation=2")
    straight = tmp_path / "straight"
    fit.run_with_args(fit_args(tiny_tfrecords, straight, *common))

    resumed = tmp_path / "resumed"
    with pytest.raises(Kill.Killed):
        fit.run_with_args(fit_args(tiny_tfrecords, resumed, *common), [Kill(at=5)])
    # Killed after 5 batches: the newest checkpoint is the one after batch 4.
    assert tf.train.latest_checkpoint(str(resumed / train_lib.CHECKPOINT_DIR)).endswith("ckpt-4")
    metrics = fit.run_with_args(fit_args(tiny_tfrecords, resumed, *common))

    expected, actual = checkpoint_values(straight), checkpoint_values(resumed)
    assert expected.keys() == actual.keys()
    assert any("position" in n for n in actual)
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
    assert [h["step"] for h in metrics["history"]] == [4, 7]


@pytest.mark.parametrize("bad, flag", [
    ("--batch_size=0", "--batch_size"),
    ("--adversarial=pgd", "--adversarial"),
    ("--backbone_config=[1, 2]", "--backbone_config"),
    ("--eval_fraction=0.9", "--eval_fraction"),
])
def test_bad_flags_name_the_flag(tiny_tfrecords, tmp_path, bad, flag):
    with pytest.raises(flags.Error, match=flag):
        fit.run_with_args(fit_args(tiny_tfrecords, tmp_path, bad))


def test_missing_data_source_is_reported(tmp_path):
    with pytest.raises(flags.Error, match="--examples and --products"):
        fit.run_with_args(["fit", f"--output_dir={tmp_path}", f"--backbone_config={TINY_CONFIG}"])


def test_batch_larger_than_data_is_reported(tiny_tfrecords, tmp_path):
    with pytest.raises(flags.Error, match="--batch_size=4096"):
        fit.run_with_args(fit_args(tiny_tfrecords, tmp_path, "--batch_size=4096"))


class RecordOptimizer(keras.callbacks.Callback):
    """Keeps the optimizer and the token-embedding table at the start of training."""

    def on_train_begin(self, logs=None):
        self.optimizer = self.model.optimizer
        self.table_before = np.asarray(self.model.model.word_embeddings).copy()
        self.table_after = None

    def on_train_end(self, logs=None):
        self.table_after = np.asarray(self.model.model.word_embeddings)


@pytest.mark.slow
def test_lazy_adamw_with_fgm_moves_only_the_seen_embedding_rows(tiny_tfrecords, tmp_path):
    from esci_tf.training.lazy_adamw import LazyAdamW
    from esci_tf.records.dataset import make_dataset

    record = RecordOptimizer()
    metrics = fit.run_with_args(fit_args(tiny_tfrecords, tmp_path, "--steps=3", "--optimizer=lazy_adamw",
                                         "--adversarial=fgm", "--clipnorm=1.0"), [record])
    assert isinstance(record.optimizer, LazyAdamW)
    assert metrics["history"][-1]["step"] == 3
    assert all(np.isfinite(v) for v in metrics["history"][-1].values() if isinstance(v, float))
    seen = set()
    for features, *_ in make_dataset(f"{tiny_tfrecords}/train-*", batch_size=8, max_length=24, training=False):
        seen.update(np.unique(features["token_ids"].numpy()).tolist())
    moved = set(np.flatnonzero(np.abs(record.table_after - record.table_before).sum(axis=1) > 0).tolist())
    # Only ids of the training data moved (dense AdamW's weight decay would move every row).
    assert moved and moved <= seen and len(moved) < len(record.table_before) // 2
