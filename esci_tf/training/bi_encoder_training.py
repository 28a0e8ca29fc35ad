"""Fine-tuning a BiEncoder on query lists with a keras-rs pairwise ranking loss (or CoSENT).

`train_bi_encoder_ranker` builds a BiEncoderRanker from a pretrained sentence encoder (or a
random config) and fine-tunes it on a merged frame's query lists (`list_dataset`: at most
`list_size` products a list, an endless seeded shuffle). With a checkpoint directory it resumes
as the cross-encoder's run loop does (esci_tf.training.checkpointing.TrainingCheckpoint: model
and optimizer variables and the data position, saved every `checkpoint_every` steps; a killed
fine-tune continues from the last one on the same stream).

A batch holds query lists: the query's int32 [B, Tq] "query_token_ids"/"query_padding_mask",
the products' [B, L, Tp] "product_token_ids"/"product_padding_mask", "list_mask" [B, L] (False
on padding items) and targets [B, L]: the ESCI gain of each item. Each query is embedded once
and only the real items are embedded (padding costs nothing); the item's score is the cosine,
scaled by `scale` as sentence-transformers' ranking losses do. The loss (`loss`):
- "pairwise_logistic": keras_rs.losses.PairwiseLogisticLoss over each list, the mean of
  log(1 + exp(s_j - s_i)) over every pair whose gains order i above j;
- "cosent": CoSENT (Su 2022, sentence-transformers' CoSENTLoss) over the same pairs of every list
  of the batch: log(1 + sum exp(s_j - s_i)), one log-sum-exp over the batch, so the worst-ordered
  pairs dominate the gradient instead of being averaged with the easy ones.
AdamW with linear warmup and decay (esci_tf.training.schedules), no
decay on biases and norms, as the cross-encoder trains.
"""

import dataclasses

import keras
import keras_rs
import numpy as np
import tensorflow as tf
from absl import logging

from esci_tf.choices import BI_ENCODER_LOSSES
from esci_tf.labels import GAINS

from esci_tf.training.schedules import WarmupLinearDecay
from esci_tf.training.task import NO_DECAY_NAMES

LIST_MASK = "list_mask"


@dataclasses.dataclass(frozen=True)
class BiEncoderSettings:
    """How a bi-encoder fine-tunes (the recipe's --bi_encoder_* flags)."""

    epochs: int = 4
    learning_rate: float = 3e-5
    list_size: int = 16
    lists_per_batch: int = 4
    scale: float = 20.0
    loss: str = BI_ENCODER_LOSSES[0]  # pairwise_logistic, or cosent (the module docstring)
    query_length: int = 24
    product_length: int = 64
    precision: str = "mixed_bfloat16"
    seed: int = 0


def cosent_loss(gains, scores, mask):
    """log(1 + sum over ordered pairs of exp(s_j - s_i)): pairs (i, j) of one list, both real items,
    gain_i > gain_j; gains, scores [B, L] float32, mask [B, L] bool. 0 when no pair is ordered."""
    ordered = (gains[:, :, None] > gains[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    differences = scores[:, None, :] - scores[:, :, None]  # [b, i, j] = s_j - s_i
    terms = tf.boolean_mask(differences, ordered)
    return tf.reduce_logsumexp(tf.concat([tf.zeros([1], terms.dtype), terms], axis=0))


class BiEncoderTrainer(keras.Model):
    """The train step around a BiEncoder (see the module docstring)."""

    def __init__(self, model, scale: float = 20.0, loss: str = BI_ENCODER_LOSSES[0], **kwargs):
        super().__init__(**kwargs)
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if loss not in BI_ENCODER_LOSSES:
            raise ValueError(f"loss must be one of {BI_ENCODER_LOSSES}, got {loss!r}")
        self.model = model
        self.scale = float(scale)
        self.loss_name = loss
        self.ranking_loss = keras_rs.losses.PairwiseLogisticLoss()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        if model.built:
            self.built = True

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker]

    def list_scores(self, x, training):
        """[B, L] scaled cosines of every real item of every list (0 on padding items)."""
        mask = tf.cast(x[LIST_MASK], tf.bool)
        query = self.model.embed(x["query_token_ids"], x["query_padding_mask"], training=training)
        positions = tf.where(mask)  # [N, 2]: (list, item) of each real item
        products = self.model.embed(tf.gather_nd(x["product_token_ids"], positions),
                                    tf.gather_nd(x["product_padding_mask"], positions), training=training)
        cosine = tf.reduce_sum(tf.cast(tf.gather(query, positions[:, 0]), tf.float32) * tf.cast(products, tf.float32),
                               axis=-1)
        return tf.scatter_nd(positions, cosine * self.scale, tf.shape(mask, out_type=tf.int64))

    def list_loss(self, gains, scores, mask):
        if self.loss_name == "cosent":
            return cosent_loss(gains, scores, mask)
        return self.ranking_loss({"labels": gains, "mask": mask}, scores)

    def train_step(self, data):
        x, gains, _ = keras.utils.unpack_x_y_sample_weight(data)
        mask = tf.cast(x[LIST_MASK], tf.bool)
        with tf.GradientTape() as tape:
            scores = self.list_scores(x, training=True)
            loss = self.list_loss(tf.cast(gains, tf.float32), scores, mask)
            scaled = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def train_bi_encoder(model, dataset, steps: int, learning_rate: float = 3e-5, warmup_ratio: float = 0.1,
                     weight_decay: float = 0.01, clipnorm: float = 1.0, scale: float = 20.0,
                     loss: str = BI_ENCODER_LOSSES[0], checkpoint_dir: str | None = None,
                     checkpoint_every: int = 100) -> dict:
    """Fit `model` for `steps` batches of `dataset` (endless list batches, the same stream on every
    call); with `checkpoint_dir`, continue from its last checkpoint and save one every
    `checkpoint_every` steps. Returns the history: "loss" (the mean loss of each fit call: one,
    or one per checkpointed chunk) and "start_step" (where it started; 0: fresh)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    trainer = BiEncoderTrainer(model, scale, loss)
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(learning_rate, int(round(warmup_ratio * steps)), steps),
        weight_decay=weight_decay, clipnorm=clipnorm or None)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    trainer.compile(optimizer=optimizer)
    if checkpoint_dir is None:
        return {**trainer.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0).history, "start_step": 0}
    from esci_tf.training.checkpointing import TrainingCheckpoint

    checkpoint = TrainingCheckpoint(checkpoint_dir, trainer, optimizer)
    start = position = min(checkpoint.restore_latest(), steps)
    if start:
        logging.info("bi-encoder: resuming from step %d of %d (%s)", start, steps, checkpoint_dir)
    losses = []
    while position < steps:
        chunk = min(max(1, checkpoint_every), steps - position)
        losses += trainer.fit(dataset.skip(position), steps_per_epoch=chunk, epochs=1, verbose=0).history["loss"]
        position += chunk
        checkpoint.save(position)
    return {"loss": losses, "start_step": start}


def list_dataset(ranker, frame, settings: BiEncoderSettings):
    """The frame's query lists (at most list_size products each), packed by `ranker`, as an
    endless seeded stream of batches of lists_per_batch lists (`shuffled_stream`); and the number
    of lists."""
    from esci_tf.rankers.bi_encoder import texts

    queries, products = texts(frame, ranker.product_text)
    gains = GAINS[frame["label"].to_numpy()]
    query_ids, query_mask = ranker.pack(queries, ranker.query_length)
    product_ids, product_mask = ranker.pack(products, ranker.product_length)
    chunks = []
    for rows in frame.reset_index(drop=True).groupby("query_id", sort=False).indices.values():
        chunks.extend(rows[i:i + settings.list_size] for i in range(0, len(rows), settings.list_size))
    size, count = settings.list_size, len(chunks)
    lists = {"query_token_ids": np.stack([query_ids[c[0]] for c in chunks]),
             "query_padding_mask": np.stack([query_mask[c[0]] for c in chunks]),
             "product_token_ids": np.zeros((count, size, ranker.product_length), np.int32),
             "product_padding_mask": np.zeros((count, size, ranker.product_length), np.int32),
             LIST_MASK: np.zeros((count, size), bool)}
    list_gains = np.zeros((count, size), np.float32)
    for i, rows in enumerate(chunks):
        lists["product_token_ids"][i, :len(rows)] = product_ids[rows]
        lists["product_padding_mask"][i, :len(rows)] = product_mask[rows]
        lists[LIST_MASK][i, :len(rows)] = True
        list_gains[i, :len(rows)] = gains[rows]
    return shuffled_stream((lists, list_gains), count, settings.seed, settings.lists_per_batch), count


def shuffled_stream(elements, count: int, seed: int, batch_size: int):
    """An endless stream of batches of `elements` (nested arrays with `count` rows): epoch e is a
    permutation drawn statelessly from (seed, e), so the stream is a function of the seed alone and
    `stream.skip(n)` is where a run that consumed n batches stands (tf.data's reshuffling shuffle
    keeps state across iterators, so a second iterator would see other orders)."""
    elements = tf.nest.map_structure(tf.constant, elements)

    def epoch(index):
        keys = tf.random.stateless_uniform([count], seed=tf.stack([tf.cast(seed, tf.int64), index]))
        return tf.data.Dataset.from_tensor_slices(tf.argsort(keys))

    return (tf.data.Dataset.range(2 ** 62).flat_map(epoch)
            .map(lambda row: tf.nest.map_structure(lambda column: tf.gather(column, row), elements))
            .batch(batch_size, drop_remainder=True).prefetch(2))


def train_bi_encoder_ranker(frame, backbone: str, checkpoint: str | None,
                            settings: BiEncoderSettings = BiEncoderSettings(), backbone_config: dict | None = None,
                            checkpoint_dir: str | None = None, checkpoint_every: int = 100):
    """A BiEncoderRanker fine-tuned from `checkpoint` (or a random `backbone_config`) on the frame's
    lists; resumed from `checkpoint_dir` when it holds a checkpoint of the same fine-tune."""
    from esci_tf.models.bi_encoder import build_bi_encoder
    from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
    from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
    from esci_tf.rankers.bi_encoder import BiEncoderRanker
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
    ranker = BiEncoderRanker(model, preprocessor, settings.query_length, settings.product_length)
    dataset, num_lists = list_dataset(ranker, frame, settings)
    steps = max(1, settings.epochs * num_lists // settings.lists_per_batch)
    train_bi_encoder(model, dataset, steps, settings.learning_rate, scale=settings.scale, loss=settings.loss,
                     checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every)
    return ranker
