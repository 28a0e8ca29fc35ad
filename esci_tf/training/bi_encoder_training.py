"""Fine-tuning a BiEncoder on query lists with a keras-rs pairwise ranking loss.

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

import keras
import keras_rs
import tensorflow as tf

from esci_tf.choices import BI_ENCODER_LOSSES

from esci_tf.training.schedules import WarmupLinearDecay
from esci_tf.training.task import NO_DECAY_NAMES

LIST_MASK = "list_mask"


def cosent_loss(gains, scores, mask):
    """log(1 + sum over ordered pairs of exp(s_j - s_i)): pairs (i, j) of one list, both real items,
    gain_i > gain_j; gains, scores [B, L] float32, mask [B, L] bool. 0 when no pair is ordered."""
    ordered = (gains[:, :, None] > gains[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    differences = scores[:, None, :] - scores[:, :, None]  # [b, i, j] = s_j - s_i
    terms = tf.boolean_mask(differences, ordered)
    return tf.reduce_logsumexp(tf.concat([tf.zeros([1], terms.dtype), terms], axis=0))


class BiEncoderTrainer(keras.Model):
    """The train step around a BiEncoder (see the module docstring)."""

    def __init__(self, model, scale: float = 20.0, loss: str = "pairwise_logistic", **kwargs):
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
                     loss: str = "pairwise_logistic") -> dict:
    """Fit `model` for `steps` batches of `dataset` (endless list batches); returns the history."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    trainer = BiEncoderTrainer(model, scale, loss)
    optimizer = keras.optimizers.AdamW(
        learning_rate=WarmupLinearDecay(learning_rate, int(round(warmup_ratio * steps)), steps),
        weight_decay=weight_decay, clipnorm=clipnorm or None)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    trainer.compile(optimizer=optimizer)
    history = trainer.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return history.history
