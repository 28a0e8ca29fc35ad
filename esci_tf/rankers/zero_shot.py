"""ZeroShotRanker: cosine similarity of a sentence encoder's mean-pooled query and title
embeddings, untrained (all-MiniLM-L6-v2 was trained for exactly this with mean pooling).

Query and title are cleaned (esci_tf.data.cleaning.clean_text), tokenized by the family's
tokenizer, packed as one segment ([CLS] text [SEP]) and embedded by the pretrained backbone;
the embedding is the mean of the last layer over the real tokens, L2-normalised. The ranker
keeps only where its weights come from (ranker.json), so a saved ranker directory is small.
"""

import os

import numpy as np
import tensorflow as tf

from esci_tf import files
from esci_tf.data.cleaning import clean_text
from esci_tf.rankers.base import RANKER_FILE

KIND = "zero_shot"


class ZeroShotRanker:
    """Cosine of mean-pooled embeddings of (query, product_title) from a pretrained backbone."""

    def __init__(self, backbone: str, checkpoint: str, query_length: int = 32, title_length: int = 64,
                 batch_size: int = 128):
        self.backbone_name, self.checkpoint = backbone, checkpoint
        self.query_length, self.title_length, self.batch_size = int(query_length), int(title_length), int(batch_size)
        self._encoder = None

    def _build(self):
        import keras_hub

        from esci_tf.models.checkpoints import load_backbone
        from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
        from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
        from esci_tf.training.task import resolve_location

        location = resolve_location(self.checkpoint)
        self.preprocessor = PairPreprocessor(load_tokenizer(self.backbone_name, location), self.backbone_name,
                                             max(self.query_length, self.title_length))
        self.backbone = load_backbone(self.backbone_name, location, dtype="float32")
        layout = self.preprocessor.layout
        self._packers = {length: keras_hub.layers.MultiSegmentPacker(
            sequence_length=length, start_value=layout.start, end_value=layout.end, pad_value=layout.pad)
            for length in {self.query_length, self.title_length}}
        spec = tf.TensorSpec([None], tf.string)
        self._encoder = {length: tf.function(lambda texts, length=length: self.tf_embed(texts, length),
                                             input_signature=[spec]) for length in self._packers}

    def tf_embed(self, texts, length: int):
        """float32 [B, hidden] unit-norm embeddings of a string tensor [B] of cleaned texts (TF ops:
        the export runs them in the SavedModel)."""
        if self._encoder is None:
            self._build()
        pad = self.preprocessor.layout.pad
        token_ids, _ = self._packers[length](self.preprocessor.tokenize(texts))
        token_ids = tf.cast(token_ids, tf.int32)
        mask = tf.cast(token_ids != pad, tf.int32)
        inputs = {"token_ids": token_ids, "padding_mask": mask}
        if "segment_ids" in self.backbone.input:
            inputs["segment_ids"] = tf.zeros_like(token_ids)
        hidden = tf.cast(self.backbone(inputs)["sequence_output"], tf.float32)
        weights = tf.cast(mask, tf.float32)[..., None]
        pooled = tf.reduce_sum(hidden * weights, 1) / tf.maximum(tf.reduce_sum(weights, 1), 1.0)
        return tf.math.l2_normalize(pooled, axis=-1)

    def tf_scores(self, queries, titles):
        """float32 [B] cosine of cleaned query and title string tensors [B], in TF ops."""
        return tf.reduce_sum(self.tf_embed(queries, self.query_length) * self.tf_embed(titles, self.title_length),
                             axis=-1)

    def embed(self, texts, length: int) -> np.ndarray:
        """[N, hidden] unit-norm embeddings of cleaned texts."""
        if self._encoder is None:
            self._build()
        parts = [self._encoder[length](tf.constant(texts[start:start + self.batch_size])).numpy()
                 for start in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def scores(self, frame) -> np.ndarray:
        """[N] cosine similarity of each row's query and product title."""
        if len(frame) == 0:
            return np.zeros(0, np.float64)
        queries = [clean_text(q) for q in frame["query"].tolist()]
        titles = [clean_text(t) for t in frame["product_title"].fillna("").tolist()]
        distinct = list(dict.fromkeys(queries))
        query_vectors = dict(zip(distinct, self.embed(distinct, self.query_length)))
        title_vectors = self.embed(titles, self.title_length)
        return np.array([float(query_vectors[q] @ v) for q, v in zip(queries, title_vectors)])

    # -- saving
    def save(self, directory: str) -> None:
        state = {"kind": KIND, "backbone": self.backbone_name, "checkpoint": self.checkpoint,
                 "query_length": self.query_length, "title_length": self.title_length}
        files.write_json(os.path.join(directory, RANKER_FILE), state)

    @classmethod
    def load(cls, directory: str, batch_size: int = 128) -> "ZeroShotRanker":
        state = files.read_json(os.path.join(directory, RANKER_FILE))
        return cls(state["backbone"], state["checkpoint"], state["query_length"], state["title_length"], batch_size)
