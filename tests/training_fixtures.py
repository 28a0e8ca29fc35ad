"""Shared helpers for the training tests: a tiny BERT ranker exposing `word_embeddings`.

(No tests here; the test_training_* files import it.)
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import keras_hub
import numpy as np

VOCAB = 60
SEQ = 12


class TinyRanker(keras.Model):
    """BertBackbone (2 layers, hidden 32) + Dense(4) on the pooled [CLS] vector."""

    def __init__(self, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.backbone = keras_hub.models.BertBackbone(
            vocabulary_size=VOCAB, num_layers=2, num_heads=2, hidden_dim=32,
            intermediate_dim=64, max_sequence_length=SEQ, dropout=dropout,
        )
        self.head = keras.layers.Dense(4, name="head")

    def call(self, inputs, training=False):
        pooled = self.backbone(inputs, training=training)["pooled_output"]
        return self.head(pooled)

    @property
    def word_embeddings(self):
        return self.backbone.token_embedding.embeddings


def make_batch(batch_size, seed=0):
    """(features, soft labels) numpy batch; repeated token ids so FGM sees duplicates."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, VOCAB // 3, size=(batch_size, SEQ)).astype("int32")
    lengths = rng.integers(SEQ // 2, SEQ + 1, size=batch_size)
    padding_mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype("int32")
    token_ids = token_ids * padding_mask
    segment_ids = ((np.arange(SEQ)[None, :] >= 4) & (padding_mask == 1)).astype("int32")
    labels = np.eye(4, dtype="float32")[rng.integers(0, 4, size=batch_size)]
    features = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
    return features, labels


def build_tiny(seed=0, dropout=0.0):
    """A built TinyRanker with weights fixed by `seed`."""
    keras.utils.set_random_seed(seed)
    model = TinyRanker(dropout=dropout)
    features, _ = make_batch(2)
    model(features)
    return model


def weights_of(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]
