"""LazyAdamW: keras AdamW whose sparse gradients update only the rows they touch.

The token-embedding gradient of a batch is a tf.IndexedSlices over the few thousand token ids
the batch holds, but keras.optimizers.AdamW turns it into a dense tensor of the whole table
and updates every row's moments, weights and weight decay: for XLM-R's 250,002 x 768 table
that is five dense passes over 192M floats per step (and TF warns "Converting sparse
IndexedSlices to a dense Tensor"). LazyAdamW, like TF-Addons' LazyAdam (unmaintained, Keras
2 only), updates the first and second moments, the Adam step and the decoupled weight decay
of the touched rows only; dense gradients get exactly keras AdamW's update.

Semantics differ from dense AdamW only for rows a step does not touch: their moments are not
decayed and their weights do not move on old momentum or weight decay. That is the usual
trade for large embedding tables (tests/test_lazy_adamw.py checks both halves).

>>> import numpy as np, keras, tensorflow as tf
>>> table = keras.Variable(np.ones((5, 2), "float32"))
>>> optimizer = LazyAdamW(learning_rate=0.1, weight_decay=0.0)
>>> optimizer.apply([tf.IndexedSlices(tf.ones((1, 2)), tf.constant([3]), tf.constant([5, 2]))], [table])
>>> [round(float(x), 3) for x in np.asarray(table)[:, 0]]  # only row 3 moved
[1.0, 1.0, 1.0, 0.9, 1.0]
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="esci_tf")
class LazyAdamW(keras.optimizers.AdamW):
    """keras.optimizers.AdamW (same arguments) with row-wise updates for sparse gradients."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.amsgrad:
            raise ValueError("LazyAdamW does not support amsgrad=True")
        self._sparse_keys = set()

    def apply(self, grads, trainable_variables=None):
        # Sparse gradients are summed per row first, so norms and clipping see the same
        # values as the dense gradient would. Their variables get weight decay row-wise.
        grads = [_deduplicate(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        variables = trainable_variables if trainable_variables is not None else self._trainable_variables
        self._sparse_keys = {
            self._var_key(v) for g, v in zip(grads, variables) if isinstance(g, tf.IndexedSlices)
        }
        return super().apply(grads, trainable_variables)

    def _clip_gradients(self, grads):
        # Keras' clipping converts IndexedSlices to dense tensors; TF's keeps them sparse.
        if self.clipnorm and self.clipnorm > 0:
            return [None if g is None else tf.clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            present = [g for g in grads if g is not None]
            clipped = iter(tf.clip_by_global_norm(present, self.global_clipnorm)[0])
            return [None if g is None else next(clipped) for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            return [None if g is None else _map_values(g, lambda x: tf.clip_by_value(
                x, -self.clipvalue, self.clipvalue)) for g in grads]
        return grads

    def _use_weight_decay(self, variable):
        if self._var_key(variable) in self._sparse_keys:
            return False
        return super()._use_weight_decay(variable)

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rows, values = gradient.indices, tf.cast(gradient.values, dtype)  # unique: see apply()
        lr = tf.cast(learning_rate, dtype)
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        m_rows = beta_1 * tf.gather(_tf_variable(m), rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(_tf_variable(v), rows) + (1 - beta_2) * tf.square(values)
        shape = gradient.dense_shape
        self.assign(m, tf.IndexedSlices(m_rows, rows, shape))
        self.assign(v, tf.IndexedSlices(v_rows, rows, shape))
        delta = alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon)
        if self.weight_decay and super()._use_weight_decay(variable):
            weight_rows = tf.gather(_tf_variable(variable), rows)
            delta += weight_rows * tf.cast(self.weight_decay, dtype) * lr
        self.assign_sub(variable, tf.IndexedSlices(delta, rows, shape))


def _deduplicate(gradient: tf.IndexedSlices) -> tf.IndexedSlices:
    """The same gradient with each row once (values of repeated rows summed)."""
    rows, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, gradient.dense_shape)


def _map_values(gradient, fn):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(fn(gradient.values), gradient.indices, gradient.dense_shape)
    return fn(gradient)


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable
