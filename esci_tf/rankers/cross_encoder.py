"""CrossEncoderRanker: a trained CrossEncoder with its FrameEncoder, scoring merged ESCI frames.

It loads from a trainers.fit output directory (best_model.keras + preprocessing.json), so
prediction uses exactly the preprocessing the run's TFRecords were built with: the model gets
the run's FieldsPreprocessor and predicts from the raw fields of each row, placing every output
by the row's id (not by batch order).
"""

import os

import numpy as np

from esci_tf.errors import DataError
from esci_tf.labels import ranking_score
from esci_tf.preprocessing import fields_preprocessor  # noqa: F401  (registers a saved model's preprocessor class)
from esci_tf.rankers.base import check_locales, ranker_locales
from esci_tf.preprocessing.frame_encoder import FrameEncoder
from esci_tf.preprocessing.template import frame_fields
from esci_tf.training.checkpointing import BEST_MODEL, model_file_problem

ENCODE_CHUNK = 8192  # pairs predicted per call (bounds memory on large files)


class CrossEncoderRanker:
    """Class probabilities and ranking scores of every pair of a frame."""

    kind = "cross_encoder"

    def __init__(self, model, encoder: FrameEncoder, batch_size: int = 128, locales: tuple | None = None):
        self.model = model
        self.locales = locales  # the run's --locales (None: every locale)
        self.encoder = encoder
        self.batch_size = batch_size
        if getattr(model, "preprocessor", None) is None:
            model.preprocessor = encoder.fields_preprocessor

    @classmethod
    def load(cls, model_dir: str, batch_size: int = 128) -> "CrossEncoderRanker":
        """The best model and preprocessing of a trainers.fit --output_dir; a best_model.keras that
        is not a complete archive (checkpointing.model_file_problem) is a DataError naming it."""
        import keras

        import esci_tf.models  # noqa: F401  (registers the custom layers for loading)

        encoder = FrameEncoder.load(model_dir)
        path = os.path.join(model_dir, BEST_MODEL)
        problem = model_file_problem(path)
        if problem == "missing":
            raise FileNotFoundError(f"--model_dir={model_dir}: no {BEST_MODEL} in it")
        if problem is not None:  # Keras would say "File not found" of a file cut short
            raise DataError(f"truncated or corrupt: {problem}; the same trainers.fit command run again on "
                            f"{model_dir} rebuilds a best model of its last step", path=path)
        return cls(keras.saving.load_model(path), encoder, batch_size, ranker_locales(model_dir))

    def probabilities(self, frame) -> np.ndarray:
        """[N, 4] class probabilities (E, S, C, I) of every row of `frame`, in order."""
        import keras

        check_locales(self, frame)
        probabilities = np.full((len(frame), 4), np.nan, np.float32)
        for start in range(0, len(frame), ENCODE_CHUNK):
            rows = frame.iloc[start:start + ENCODE_CHUNK]
            fields = frame_fields(rows)
            fields["example_id"] = np.arange(start, start + len(rows), dtype=np.int64)
            out = self.model.predict(fields, batch_size=self.batch_size, verbose=0)
            logits = keras.ops.cast(out["logits"], "float32")
            probabilities[np.asarray(out["example_id"])] = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1))
        if np.isnan(probabilities).any():
            raise RuntimeError(f"prediction returned no output for {int(np.isnan(probabilities[:, 0]).sum())} rows")
        return probabilities

    def scores(self, frame) -> np.ndarray:
        """[N] ranking scores P(E) + 0.1 P(S) + 0.01 P(C)."""
        return ranking_score(self.probabilities(frame))
