"""BiEncoderRanker: a fine-tuned BiEncoder (esci_tf.models.bi_encoder) scoring merged ESCI frames.

The query side is the cleaned query; the product side is the cleaned brand and title. Training
(`BiEncoderRanker.train`) starts from a pretrained sentence encoder and fine-tunes it on the
frame's query lists (esci_tf.training.bi_encoder_training), cut into lists of at most
`list_size` products. A fine-tune is short: killed, it starts again from the beginning. The
ranker directory holds bi_encoder.keras and ranker.json (tokenizer config and lengths).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from esci_tf import files
from esci_tf.preprocessing.cleaning import clean_texts
from esci_tf.labels import GAINS
from esci_tf.rankers.base import RANKER_FILE, check_locales, locales_record, ranker_locales

KIND = "bi_encoder"
MODEL_FILE = "bi_encoder.keras"


@dataclasses.dataclass(frozen=True)
class BiEncoderSettings:
    """How a bi-encoder fine-tunes (the recipe's --bi_encoder_* flags)."""

    epochs: int = 4
    learning_rate: float = 3e-5
    list_size: int = 16
    lists_per_batch: int = 4
    scale: float = 20.0
    query_length: int = 24
    product_length: int = 64
    precision: str = "mixed_bfloat16"
    seed: int = 0


PRODUCT_TEXTS = ("brand_title", "title")


def texts(frame, product_text: str = "brand_title") -> tuple:
    """(queries, product texts) of a merged frame: the cleaned query; the cleaned brand and title
    ("brand_title") or the title alone ("title")."""
    if product_text not in PRODUCT_TEXTS:
        raise ValueError(f"product_text must be one of {PRODUCT_TEXTS}, got {product_text!r}")
    queries = clean_texts(frame["query"].tolist())
    titles = clean_texts(frame["product_title"].tolist())
    if product_text == "title":
        return queries, titles
    brands = clean_texts(frame["product_brand"].tolist()) if "product_brand" in frame else [""] * len(frame)
    return queries, [" ".join(t for t in (brand, title) if t) for brand, title in zip(brands, titles)]


class BiEncoderRanker:
    """Cosine of the fine-tuned embeddings of each row's query and product."""

    kind = KIND

    locales = None  # the locales it was trained for (None: every locale)

    def __init__(self, model, preprocessor, query_length: int = 24, product_length: int = 64,
                 product_text: str = "brand_title", batch_size: int = 128):
        self.model, self.preprocessor = model, preprocessor
        self.query_length, self.product_length = int(query_length), int(product_length)
        self.product_text, self.batch_size = product_text, int(batch_size)
        self._packers = self._packed = None

    def ready(self) -> "BiEncoderRanker":
        """Load what the ranker needs before any TF function is traced (a no-op here)."""
        return self

    # -- inputs
    def tf_pack(self, texts, length: int):
        """(token_ids, padding_mask) int32 [B, length] of a string tensor [B] of cleaned texts."""
        return self._pack_ids(self.preprocessor.tokenize(texts), length)

    def _pack_ids(self, ids, length: int):
        """(token_ids, padding_mask) int32 [B, length] of ragged token ids [B, None]."""
        if self._packers is None:
            import keras_hub

            layout = self.preprocessor.layout
            self._packers = {n: keras_hub.layers.MultiSegmentPacker(
                sequence_length=n, start_value=layout.start, end_value=layout.end, pad_value=layout.pad)
                for n in {self.query_length, self.product_length}}
        token_ids = tf.cast(self._packers[length](ids)[0], tf.int32)
        return token_ids, tf.cast(token_ids != self.preprocessor.layout.pad, tf.int32)

    def pack(self, texts, length: int) -> tuple:
        """(token_ids, padding_mask) numpy int32 [N, length] of cleaned texts: tokenized by the
        preprocessor's traced graph (shared by equal preprocessors), packed by a small one."""
        if self._packed is None:
            self.ready()
            spec = [tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)]
            self._packed = {n: tf.function(lambda ids, n=n: self._pack_ids(ids, n), input_signature=spec)
                            for n in {self.query_length, self.product_length}}
        parts = [self._packed[length](self.preprocessor.tokenize(tf.constant(texts[s:s + 4096])))
                 for s in range(0, len(texts), 4096)]
        if not parts:
            empty = np.zeros((0, length), np.int32)
            return empty, empty.copy()
        return tuple(np.concatenate([p[i].numpy() for p in parts]) for i in (0, 1))

    # -- scoring
    def scores(self, frame) -> np.ndarray:
        """[N] cosine of each row's query and product."""
        check_locales(self, frame)
        if len(frame) == 0:
            return np.zeros(0, np.float64)
        queries, products = texts(frame, self.product_text)
        query_ids, query_mask = self.pack(queries, self.query_length)
        product_ids, product_mask = self.pack(products, self.product_length)
        inputs = {"query_token_ids": query_ids, "query_padding_mask": query_mask,
                  "product_token_ids": product_ids, "product_padding_mask": product_mask}
        return np.asarray(self.model.predict(inputs, batch_size=self.batch_size, verbose=0), np.float64)

    def tf_scores(self, queries, products):
        """float32 [B] cosine of string tensors [B] of the cleaned query and product texts (see
        `texts`), in TF ops (the SavedModel export runs them)."""
        query_ids, query_mask = self.tf_pack(queries, self.query_length)
        product_ids, product_mask = self.tf_pack(products, self.product_length)
        return tf.cast(self.model({"query_token_ids": query_ids, "query_padding_mask": query_mask,
                                   "product_token_ids": product_ids, "product_padding_mask": product_mask},
                                  training=False), tf.float32)

    # -- training
    def list_dataset(self, frame, settings: BiEncoderSettings):
        """The frame's query lists (at most list_size products each) as an endless, shuffled
        tf.data stream of batches of lists_per_batch lists; and the number of lists."""
        queries, products = texts(frame, self.product_text)
        gains = GAINS[frame["label"].to_numpy()]
        query_ids, query_mask = self.pack(queries, self.query_length)
        product_ids, product_mask = self.pack(products, self.product_length)
        chunks = []
        for rows in frame.reset_index(drop=True).groupby("query_id", sort=False).indices.values():
            chunks.extend(rows[i:i + settings.list_size] for i in range(0, len(rows), settings.list_size))
        size, count = settings.list_size, len(chunks)
        lists = {"query_token_ids": np.stack([query_ids[c[0]] for c in chunks]),
                 "query_padding_mask": np.stack([query_mask[c[0]] for c in chunks]),
                 "product_token_ids": np.zeros((count, size, self.product_length), np.int32),
                 "product_padding_mask": np.zeros((count, size, self.product_length), np.int32),
                 "list_mask": np.zeros((count, size), bool)}
        list_gains = np.zeros((count, size), np.float32)
        for i, rows in enumerate(chunks):
            lists["product_token_ids"][i, :len(rows)] = product_ids[rows]
            lists["product_padding_mask"][i, :len(rows)] = product_mask[rows]
            lists["list_mask"][i, :len(rows)] = True
            list_gains[i, :len(rows)] = gains[rows]
        dataset = (tf.data.Dataset.from_tensor_slices((lists, list_gains))
                   .shuffle(count, seed=settings.seed, reshuffle_each_iteration=True).repeat()
                   .batch(settings.lists_per_batch, drop_remainder=True).prefetch(2))
        return dataset, count

    @classmethod
    def train(cls, frame, backbone: str, checkpoint: str, settings: BiEncoderSettings = BiEncoderSettings(),
              backbone_config: dict | None = None) -> "BiEncoderRanker":
        """Fine-tune a BiEncoder from `checkpoint` (or a random `backbone_config`) on the frame's lists."""
        from esci_tf.models.bi_encoder import build_bi_encoder
        from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
        from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
        from esci_tf.training.bi_encoder_training import train_bi_encoder
        from esci_tf.training.seeding import set_random_seed
        from esci_tf.training.task import resolve_location

        set_random_seed(settings.seed)
        location = resolve_location(checkpoint)
        longest = max(settings.query_length, settings.product_length)
        preprocessor = PairPreprocessor(load_tokenizer(backbone, location), backbone, longest)
        if backbone_config is not None:  # random init (tests): the tokenizer's vocabulary
            backbone_config = {"vocabulary_size": preprocessor.base_vocabulary_size, "max_sequence_length": longest,
                               **backbone_config}
        model = build_bi_encoder(backbone, checkpoint=location if backbone_config is None else None,
                                 backbone_config=backbone_config, dtype_policy=settings.precision)
        ranker = cls(model, preprocessor, settings.query_length, settings.product_length)
        dataset, num_lists = ranker.list_dataset(frame, settings)
        steps = max(1, settings.epochs * num_lists // settings.lists_per_batch)
        train_bi_encoder(model, dataset, steps, settings.learning_rate, scale=settings.scale)
        return ranker

    # -- saving
    def save(self, directory: str) -> None:
        with files.atomic_path(os.path.join(directory, MODEL_FILE)) as temporary:  # a .tmp. name until complete
            self.model.save(temporary)
        files.write_json(os.path.join(directory, RANKER_FILE), {
            "kind": KIND, "preprocessor": self.preprocessor.get_config(), "query_length": self.query_length,
            "product_length": self.product_length, "product_text": self.product_text, **locales_record(self)},
            indent=None)

    @classmethod
    def load(cls, directory: str, batch_size: int = 128) -> "BiEncoderRanker":
        import keras

        import esci_tf.models.bi_encoder  # noqa: F401  (registers BiEncoder for loading)
        from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor

        state = files.read_json(os.path.join(directory, RANKER_FILE))
        model = keras.saving.load_model(os.path.join(directory, MODEL_FILE))
        ranker = cls(model, PairPreprocessor.from_config(state["preprocessor"]), state["query_length"],
                     state["product_length"], state["product_text"], batch_size)
        ranker.locales = ranker_locales(directory)
        return ranker
