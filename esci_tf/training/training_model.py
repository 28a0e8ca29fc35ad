"""TrainingModel: wraps a ranker and trains it on soft labels, optionally with FGM or AWP.

Build it (and the wrapped model) inside the strategy scope, compile it with a Keras
optimizer (gradient_accumulation_steps, loss scaling, jit_compile all work) and call fit /
evaluate / predict. The loss is Keras' soft-label cross-entropy from logits
(losses.classification_loss, with label smoothing and Keras' own per-replica scaling under
tf.distribute); on listwise batches (features with a "list_mask", see
esci_tf.training.listwise) it is the masked cross-entropy plus listwise_loss_weight times a
keras-rs ranking loss over each query's list.
Save the wrapped model (`training_model.model.save("x.keras")`), not the wrapper.
"""

import keras
import tensorflow as tf

from esci_tf.training import adversarial as adv_lib
from esci_tf.training import listwise as listwise_lib
from esci_tf.training.losses import classification_loss, smooth_targets

ADVERSARIAL_MODES = (None, "fgm", "awp")


def _add_gradients(a, b):
    """a + b for dense tensors, IndexedSlices (concatenated rows) or None."""
    if a is None:
        return b
    if b is None:
        return a
    a_sparse, b_sparse = isinstance(a, tf.IndexedSlices), isinstance(b, tf.IndexedSlices)
    if a_sparse and b_sparse:
        return tf.IndexedSlices(
            tf.concat([a.values, b.values], axis=0),
            tf.concat([a.indices, tf.cast(b.indices, a.indices.dtype)], axis=0),
            a.dense_shape,
        )
    if a_sparse or b_sparse:
        sparse, dense = (a, b) if a_sparse else (b, a)
        return tf.tensor_scatter_nd_add(dense, tf.expand_dims(sparse.indices, -1), sparse.values)
    return a + b


def _flatten_gradients(gradients):
    """Gradients as a flat tensor list (IndexedSlices -> values, indices) for tf.cond.

    The skipped branch of the AWP cond returns zeros of the same shapes (zero rows at
    index 0 for IndexedSlices), so both branches have the same static shapes under XLA.
    """
    flat = []
    for g in gradients:
        if isinstance(g, tf.IndexedSlices):
            flat.extend([g.values, g.indices])
        elif g is not None:
            flat.append(g)
    return flat


def _unflatten_gradients(flat, like):
    """Inverse of _flatten_gradients, using `like` (same structure) for the layout."""
    flat = iter(flat)
    out = []
    for g in like:
        if isinstance(g, tf.IndexedSlices):
            out.append(tf.IndexedSlices(next(flat), next(flat), g.dense_shape))
        elif g is None:
            out.append(None)
        else:
            out.append(next(flat))
    return out


class TrainingModel(keras.Model):
    """Trains `model` (logits [B, 4]) on soft-label targets [B, 4], smoothed by
    label_smoothing ((1 - a) * y + a / 4).

    adversarial: None, "fgm" (perturb `model.word_embeddings` by fgm_epsilon * g / ||g||)
    or "awp" (perturb the weights chosen by `awp_targets`, a regex on variable paths or a
    callable, by awp_lr * g / ||g|| * ||w|| clipped to awp_eps * |w|, once the EMA of the
    training loss, with decay awp_loss_decay, is below awp_start_loss). The adversarial
    gradients are added to the clean ones; perturbed weights are restored bit-exactly.

    Logs: loss, accuracy; with adversarial training also adv_loss (mean loss of the
    adversarial passes that ran; 0 while AWP waits) and, for AWP, awp_loss_ema. Create it
    inside the strategy scope, like the wrapped model.

    Listwise batches (features [B, L, T] with "list_mask" [B, L], targets [B, L, 4]) are
    flattened for the model; listwise_loss_weight > 0 adds listwise_loss ("pairwise_logistic"
    or "list_mle") over each list and then requires listwise batches.
    """

    def __init__(
        self,
        model,
        adversarial=None,
        fgm_epsilon: float = 1.0,
        awp_lr: float = 1.0,
        awp_eps: float = 0.01,
        awp_start_loss: float = 0.6,
        awp_targets=adv_lib.DEFAULT_AWP_TARGETS,
        awp_loss_decay: float = 0.9,
        label_smoothing: float = 0.0,
        listwise_loss_weight: float = 0.0,
        listwise_loss: str = "pairwise_logistic",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if adversarial not in ADVERSARIAL_MODES:
            raise ValueError(
                f"adversarial must be one of {ADVERSARIAL_MODES}, got {adversarial!r}"
            )
        if not 0.0 <= awp_loss_decay < 1.0:
            raise ValueError(f"awp_loss_decay must be in [0, 1), got {awp_loss_decay}")
        if listwise_loss_weight < 0:
            raise ValueError(f"listwise_loss_weight must be >= 0, got {listwise_loss_weight}")
        if listwise_loss not in listwise_lib.LISTWISE_LOSSES:
            raise ValueError(
                f"listwise_loss must be one of {listwise_lib.LISTWISE_LOSSES}, got {listwise_loss!r}"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.classification_loss = classification_loss(self.label_smoothing)
        self.listwise_loss_weight = float(listwise_loss_weight)
        self.listwise_loss = listwise_loss
        self.model = model
        self.adversarial = adversarial
        self.awp_start_loss = float(awp_start_loss)
        self.awp_loss_decay = float(awp_loss_decay)
        self._fgm = None
        self._awp = None
        if adversarial == "fgm":
            table = getattr(model, "word_embeddings", None)
            if table is None:
                raise ValueError(
                    f"adversarial='fgm' needs the model to expose `word_embeddings` "
                    f"(the token-embedding variable); {type(model).__name__} does not"
                )
            self._fgm = adv_lib.FGMPerturbation(table, fgm_epsilon)
        elif adversarial == "awp":
            chosen = adv_lib.select_awp_variables(model.trainable_variables, awp_targets)
            self._awp = adv_lib.AWPPerturbation(chosen, awp_lr, awp_eps)
            # EMA of the training loss, < 0 until the first step sets it.
            self.loss_ema = self.add_weight(
                name="awp_loss_ema", shape=(), initializer=keras.initializers.Constant(-1.0),
                trainable=False,
            )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_metric = keras.metrics.CategoricalAccuracy(name="accuracy")
        self.adv_loss_tracker = keras.metrics.Mean(name="adv_loss") if adversarial else None
        if model.built:
            self.built = True

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)

    def save(self, filepath, *args, **kwargs):
        """Saves the wrapped model (e.g. the CrossEncoder .keras), not the wrapper."""
        return self.model.save(filepath, *args, **kwargs)

    def save_weights(self, filepath, *args, **kwargs):
        """Saves the wrapped model's weights."""
        return self.model.save_weights(filepath, *args, **kwargs)

    def load_weights(self, filepath, *args, **kwargs):
        """Loads weights saved from the wrapped model into it."""
        return self.model.load_weights(filepath, *args, **kwargs)

    @property
    def metrics(self):
        tracked = [self.loss_tracker, self.accuracy_metric]
        if self.adv_loss_tracker is not None:
            tracked.append(self.adv_loss_tracker)
        return tracked

    def compile(self, optimizer="adamw", loss=None, metrics=None, **kwargs):
        """Keras compile without `loss`/`metrics`: the soft-label loss is built in."""
        if loss is not None or metrics is not None:
            raise ValueError(
                "TrainingModel computes soft-label cross-entropy and accuracy itself; "
                "compile it with an optimizer only (got loss/metrics)"
            )
        super().compile(optimizer=optimizer, **kwargs)

    def _loss_and_logits(self, x, y, sample_weight, training):
        """(replica loss, logits [N, 4]); listwise batches are flattened to N = B * L rows."""
        if listwise_lib.is_listwise_batch(x):
            logits = self.model(listwise_lib.flatten_lists(x), training=training)
            if self.label_smoothing:
                y = smooth_targets(y, self.label_smoothing)
            loss, _, _ = listwise_lib.listwise_loss(
                y, logits, x[listwise_lib.LIST_MASK_KEY], self.listwise_loss_weight, self.listwise_loss
            )
            return loss, logits
        if self.listwise_loss_weight:
            raise ValueError(
                "listwise_loss_weight > 0 needs listwise batches (features with 'list_mask', "
                "from esci_tf.records.dataset.make_dataset(listwise=True)); got pairwise features"
            )
        logits = self.model(x, training=training)
        return self.classification_loss(y, logits, sample_weight), logits

    def _forward_backward(self, x, y, sample_weight, variables):
        """(replica loss, logits, gradients of the optimizer-scaled loss)."""
        with tf.GradientTape() as tape:
            loss, logits = self._loss_and_logits(x, y, sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss) if self.optimizer is not None else loss
        return loss, logits, tape.gradient(scaled, variables)

    def _fgm_gradients(self, x, y, sample_weight, variables, gradients):
        table_index = _index_of(variables, self._fgm.table)
        restore = self._fgm.perturb(gradients[table_index])
        adv_loss, _, adv_gradients = self._forward_backward(x, y, sample_weight, variables)
        restore()
        return adv_loss, tf.constant(True), adv_gradients

    def _awp_gradients(self, x, y, sample_weight, variables, gradients, loss):
        global_loss = adv_lib.all_reduce_sum([loss])[0]
        old = tf.cast(self.loss_ema, tf.float32)
        new_ema = tf.where(
            old < 0.0, global_loss, self.awp_loss_decay * old + (1 - self.awp_loss_decay) * global_loss
        )
        adv_lib.update_variable(self.loss_ema, lambda v, e: v.assign(e), new_ema)
        active = new_ema < self.awp_start_loss
        target_ids = [_index_of(variables, v) for v in self._awp.variables]
        restore = self._awp.perturb([gradients[i] for i in target_ids], active)

        def adversarial_pass():
            adv_loss, _, adv_gradients = self._forward_backward(x, y, sample_weight, variables)
            return [adv_loss] + _flatten_gradients(adv_gradients)

        def skipped():
            return [tf.zeros_like(loss)] + [tf.zeros_like(t) for t in _flatten_gradients(gradients)]

        flat = tf.cond(active, adversarial_pass, skipped)
        restore()
        return flat[0], active, _unflatten_gradients(flat[1:], gradients)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        loss, logits, gradients = self._forward_backward(x, y, sample_weight, variables)
        if self.adversarial == "fgm":
            adv_loss, applied, adv_gradients = self._fgm_gradients(
                x, y, sample_weight, variables, gradients
            )
        elif self.adversarial == "awp":
            adv_loss, applied, adv_gradients = self._awp_gradients(
                x, y, sample_weight, variables, gradients, loss
            )
        if self.adversarial:
            gradients = [_add_gradients(g, a) for g, a in zip(gradients, adv_gradients)]
        self.optimizer.apply(gradients, variables)
        y, sample_weight = _metric_targets(x, y, sample_weight)
        logs = self._update_metrics(loss, logits, y, sample_weight)
        if self.adversarial:
            batch = tf.cast(tf.shape(logits)[0], tf.float32)
            self.adv_loss_tracker.update_state(
                _unscale(adv_loss), sample_weight=batch * tf.cast(applied, tf.float32)
            )
            logs["adv_loss"] = self.adv_loss_tracker.result()
        if self.adversarial == "awp":
            logs["awp_loss_ema"] = tf.identity(self.loss_ema)
        return logs

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, logits = self._loss_and_logits(x, y, sample_weight, training=False)
        y, sample_weight = _metric_targets(x, y, sample_weight)
        return self._update_metrics(loss, logits, y, sample_weight)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        if listwise_lib.is_listwise_batch(x):
            x = listwise_lib.flatten_lists(x)
        return self.model(x, training=False)

    def _update_metrics(self, loss, logits, y, sample_weight):
        batch = tf.shape(logits)[0]
        self.loss_tracker.update_state(_unscale(loss), sample_weight=batch)
        self.accuracy_metric.update_state(y, tf.cast(logits, tf.float32), sample_weight)
        return {
            "loss": self.loss_tracker.result(),
            "accuracy": self.accuracy_metric.result(),
        }


def _metric_targets(x, y, sample_weight):
    """Targets and weights for the metrics: listwise batches flattened, padding weighted 0."""
    if not listwise_lib.is_listwise_batch(x):
        return y, sample_weight
    mask = tf.reshape(tf.cast(x[listwise_lib.LIST_MASK_KEY], tf.float32), [-1])
    return tf.reshape(y, [-1, tf.shape(y)[-1]]), mask


def _unscale(replica_loss_value):
    """Replica loss (sum / global batch) back to this replica's mean, as Keras reports (Keras'
    own unscaling helper is not public API)."""
    return replica_loss_value * tf.cast(
        tf.distribute.get_strategy().num_replicas_in_sync, replica_loss_value.dtype
    )


def _index_of(variables, variable):
    for i, v in enumerate(variables):
        if v is variable:
            return i
    raise ValueError(f"{variable.path} is not among the model's trainable variables")

