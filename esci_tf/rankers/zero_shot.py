"""ZeroShotRanker: the untrained cosine of a sentence encoder's mean-pooled query and title
embeddings (all-MiniLM-L6-v2 was trained for exactly this with mean pooling).

It is a BiEncoderRanker on the pretrained backbone, never fine-tuned, reading the title alone.
The saved ranker keeps only where its weights come from (ranker.json), so its directory is
small; the weights load when it first scores.
"""

import os

from esci_tf import files
from esci_tf.rankers.base import RANKER_FILE, locales_record, ranker_locales
from esci_tf.rankers.bi_encoder import BiEncoderRanker

KIND = "zero_shot"


class ZeroShotRanker(BiEncoderRanker):
    """Cosine of mean-pooled embeddings of (query, product_title) from a pretrained backbone."""

    def __init__(self, backbone: str, checkpoint: str, query_length: int = 32, title_length: int = 64,
                 batch_size: int = 128):
        super().__init__(None, None, query_length, title_length, "title", batch_size)
        self.backbone_name, self.checkpoint = backbone, checkpoint

    def ready(self) -> "ZeroShotRanker":
        """Load the pretrained backbone and tokenizer (once)."""
        if self.model is None:
            self._load()
        return self

    def _load(self):
        from esci_tf.models.bi_encoder import build_bi_encoder
        from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
        from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
        from esci_tf.training.task import resolve_location

        location = resolve_location(self.checkpoint)
        self.preprocessor = PairPreprocessor(load_tokenizer(self.backbone_name, location), self.backbone_name,
                                             max(self.query_length, self.product_length))
        self.model = build_bi_encoder(self.backbone_name, checkpoint=location, dtype_policy="float32")

    def save(self, directory: str) -> None:
        files.write_json(os.path.join(directory, RANKER_FILE), {
            "kind": KIND, "backbone": self.backbone_name, "checkpoint": self.checkpoint,
            "query_length": self.query_length, "title_length": self.product_length, **locales_record(self)})

    @classmethod
    def load(cls, directory: str, batch_size: int = 128) -> "ZeroShotRanker":
        state = files.read_json(os.path.join(directory, RANKER_FILE))
        ranker = cls(state["backbone"], state["checkpoint"], state["query_length"], state["title_length"], batch_size)
        ranker.locales = ranker_locales(directory)
        return ranker
