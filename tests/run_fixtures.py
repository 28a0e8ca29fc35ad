"""Shared helpers of the trainers.fit tests: tiny TFRecords, fit arguments, a kill switch and
checkpoint reading. The `tiny_tfrecords` fixture (conftest.py) writes the shards once a session."""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from esci_tf.training import train_lib

TINY_CONFIG = json.dumps({"num_layers": 2, "num_heads": 2, "hidden_dim": 32,
                          "intermediate_dim": 64})


def loaded_synthetic_frame(num_queries: int, seed: int, directory: str):
    """Generated ESCI files written to `directory` and read back through load_esci: the merged,
    validated frame a user's files give."""
    from esci_tf.data.reader import load_esci
    from esci_tf.data.synthetic import write_esci_files

    merged, _ = load_esci(*write_esci_files(num_queries, seed, directory), task="all")
    return merged


def write_tiny_tfrecords(directory: str) -> str:
    """Train/eval shards of generated ESCI data, tokenized with the demo vocabulary."""
    from esci_tf.data.synthetic import generate_esci
    from esci_tf.labels import label_index, one_hot
    from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
    from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
    from esci_tf.records.writer import write_split

    examples, products = generate_esci(16, 0)
    frame = examples.merge(products, on=["product_id", "product_locale"])
    preprocessor = PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", 24)
    encoded = preprocessor(frame["query"].tolist(),
                           ("[L_US] " + frame["product_title"]).tolist())
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


# tf.train.Checkpoint's count of the saves made: a SIGTERM at a batch that is not a checkpoint
# step adds one, so it depends on when a signal came, not on the training state.
SAVE_COUNTER = "save_counter/.ATTRIBUTES/VARIABLE_VALUE"


def checkpoint_values(output_dir):
    """Every value of the run's newest checkpoint that a resumed run must reproduce: weights,
    optimizer state (moments, iterations), data position and dropout seeds; not SAVE_COUNTER."""
    directory = os.path.join(output_dir, train_lib.CHECKPOINT_DIR)
    reader = tf.train.load_checkpoint(directory)
    names = [n for n, _ in tf.train.list_variables(directory)
             if not n.startswith("_CHECKPOINTABLE_OBJECT_GRAPH") and n != SAVE_COUNTER]
    assert any("position" in n for n in names) and any("optimizer" in n for n in names), names
    return {n: reader.get_tensor(n) for n in names}
