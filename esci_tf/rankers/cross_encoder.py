"""CrossEncoderRanker: a trained CrossEncoder with its FrameEncoder, scoring merged ESCI frames.

It loads from a trainers.fit output directory (best_model.keras + preprocessing.json), so
prediction uses exactly the preprocessing the run's TFRecords were built with.
"""

import os

import numpy as np

from esci_tf.labels import ranking_score
from esci_tf.preprocessing.frame_encoder import FrameEncoder
from esci_tf.training.checkpointing import BEST_MODEL

ENCODE_CHUNK = 8192  # pairs tokenized at a time (bounds memory on large files)


class CrossEncoderRanker:
    """Class probabilities and ranking scores of every pair of a frame."""

    def __init__(self, model, encoder: FrameEncoder, batch_size: int = 128):
        self.model = model
        self.encoder = encoder
        self.batch_size = batch_size

    @classmethod
    def load(cls, model_dir: str, batch_size: int = 128) -> "CrossEncoderRanker":
        """The best model and preprocessing of a trainers.fit --output_dir."""
        import keras
        import tensorflow as tf

        import esci_tf.models  # noqa: F401  (registers the custom layers for loading)

        encoder = FrameEncoder.load(model_dir)
        path = os.path.join(model_dir, BEST_MODEL)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"--model_dir={model_dir}: no {BEST_MODEL} in it")
        return cls(keras.saving.load_model(path), encoder, batch_size)

    def probabilities(self, frame) -> np.ndarray:
        """[N, 4] class probabilities (E, S, C, I) of every row of `frame`, in order."""
        import keras

        chunks = []
        for start in range(0, len(frame), ENCODE_CHUNK):
            features = self.encoder.features(frame.iloc[start:start + ENCODE_CHUNK])
            logits = self.model.predict(features, batch_size=self.batch_size, verbose=0)
            chunks.append(keras.ops.convert_to_numpy(keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1)))
        return np.concatenate(chunks) if chunks else np.zeros((0, 4), np.float32)

    def scores(self, frame) -> np.ndarray:
        """[N] ranking scores P(E) + 0.1 P(S) + 0.01 P(C)."""
        return ranking_score(self.probabilities(frame))
