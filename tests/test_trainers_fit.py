"""trainers.fit: kill-and-resume equals an uninterrupted run; outputs; bad flags name the flag."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from trainers import fit

TINY_CONFIG = json.dumps({"num_layers": 2, "num_heads": 2, "hidden_dim": 32,
                          "intermediate_dim": 64})


@pytest.fixture(scope="module")
def tiny_tfrecords(tmp_path_factory):
    """Train/eval shards of generated ESCI data, tokenized with the demo vocabulary."""
    from esci_tf.data.synthetic import generate_esci
    from esci_tf.labels import label_index, one_hot
    from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
    from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
    from tfrecords.writer import write_split

    examples, products = generate_esci(16, 0)
    frame = examples.merge(products, on=["product_id", "product_locale"])
    preprocessor = PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", 24)
    encoded = preprocessor(frame["query"].tolist(),
                           ("[L_US] " + frame["product_title"]).tolist())
    directory = tmp_path_factory.mktemp("records")
    is_eval = (frame["query_id"] % 4 == 0).to_numpy()
    for split, rows in (("train", ~is_eval), ("eval", is_eval)):
        part = frame[rows]
        columns = {key: value.numpy()[rows] for key, value in encoded.items()}
        columns.update(
            labels=one_hot([label_index(v) for v in part["esci_label"]]),
            query_id=part["query_id"].to_numpy(), example_id=part["example_id"].to_numpy(),
            fold=np.zeros(len(part), np.int64), product_id=part["product_id"].to_numpy(),
            locale=part["product_locale"].to_numpy())
        write_split(str(directory), split, columns, num_shards=2)
    return str(directory)


def fit_args(records, output_dir, *extra):
    return ["fit", f"--train_tfrecords={records}/train-*", f"--eval_tfrecords={records}/eval-*",
            "--backbone=xlm_roberta", f"--backbone_config={TINY_CONFIG}", "--max_length=24",
            "--batch_size=8", "--learning_rate=1e-3", "--warmup_steps=1", "--noprogress_bar",
            f"--output_dir={output_dir}", *extra]


class Kill(keras.callbacks.Callback):
    """Stops the process-under-test abruptly after `at` batches (no final save)."""

    class Killed(Exception):
        pass

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.at:
            raise Kill.Killed()


def checkpoint_values(output_dir):
    reader = tf.train.load_checkpoint(os.path.join(output_dir, fit.CHECKPOINT_DIR))
    names = [n for n, _ in tf.train.list_variables(os.path.join(output_dir, fit.CHECKPOINT_DIR))
             if not n.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")]
    return {n: reader.get_tensor(n) for n in names}


def test_kill_and_resume_reaches_the_same_weights(tiny_tfrecords, tmp_path):
    common = ("--steps=7", "--checkpoint_every_steps=2", "--eval_every_steps=4",
              "--gradient_accumulation=2")
    straight = tmp_path / "straight"
    fit.run_with_args(fit_args(tiny_tfrecords, straight, *common))

    resumed = tmp_path / "resumed"
    with pytest.raises(Kill.Killed):
        fit.run_with_args(fit_args(tiny_tfrecords, resumed, *common), [Kill(at=5)])
    # Killed after 5 batches: the newest checkpoint is the one after batch 4.
    assert tf.train.latest_checkpoint(str(resumed / fit.CHECKPOINT_DIR)).endswith("ckpt-4")
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


def test_lazy_adamw_with_fgm_moves_only_the_seen_embedding_rows(tiny_tfrecords, tmp_path):
    from esci_tf.training.lazy_adamw import LazyAdamW
    from tfrecords.dataset import make_dataset

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
