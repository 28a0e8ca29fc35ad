"""TFLiteRanker: a CrossEncoder's TFLite models (esci_tf.serving.tflite) scoring merged ESCI frames.

It loads from an export version directory written by trainers.export --tflite (or its tflite/
folder): the rows are encoded by the run's FrameEncoder (the preprocessing.json kept beside the
models), exactly as CrossEncoderRanker encodes them, and scored by one variant's bucket models
on the LiteRT interpreter. trainers.predict --runtime=tflite / tflite_int8 scores with it.
"""

import numpy as np

from esci_tf.labels import softmax
from esci_tf.preprocessing import fields_preprocessor  # noqa: F401  (registers the preprocessor class)
from esci_tf.preprocessing.frame_encoder import FrameEncoder
from esci_tf.rankers.base import check_locales, normalize_locales
from esci_tf.serving import tflite

RUNTIMES = {"tflite": "float32", "tflite_int8": "int8"}  # trainers.predict --runtime -> variant


class TFLiteRanker:
    """Class probabilities of every pair of a frame, from the TFLite models of one variant."""

    kind = "cross_encoder"

    def __init__(self, scorer: tflite.TFLiteScorer, encoder: FrameEncoder, locales: tuple | None = None,
                 directory: str | None = None):
        self.scorer = scorer
        self.encoder = encoder
        self.locales = locales
        self.directory = directory

    @classmethod
    def load(cls, model_dir: str, variant: str = "float32", flag: str = "--model_dir") -> "TFLiteRanker":
        """The models of `variant` in model_dir (see tflite.find_tflite) with their encoder;
        FlagError naming `flag` and the path when model_dir holds none."""
        directory = tflite.find_tflite(model_dir, flag)
        scorer = tflite.TFLiteScorer(directory, variant)
        locales = scorer.manifest.get("locales")
        return cls(scorer, FrameEncoder.load(directory), normalize_locales(locales), model_dir)

    def probabilities(self, frame) -> np.ndarray:
        """[N, 4] class probabilities (E, S, C, I) of every row of `frame`, in order."""
        check_locales(self, frame)
        if not len(frame):
            return np.zeros((0, 4), np.float32)
        return softmax(self.scorer.logits(self.encoder.features(frame)))
