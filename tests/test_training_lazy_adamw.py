"""LazyAdamW: dense gradients as keras AdamW; sparse ones update only the rows they touch."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from esci_tf.training.lazy_adamw import LazyAdamW


def _slices(values, rows, num_rows):
    return tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(rows), tf.constant([num_rows, 3]))


def _run(optimizer, grads_per_step, start):
    table = keras.Variable(start.copy())
    for grad in grads_per_step:
        optimizer.apply([grad], [table])
    return np.asarray(table)


@pytest.mark.parametrize("clip", [{}, {"clipnorm": 0.5}, {"global_clipnorm": 0.5}, {"clipvalue": 0.1}])
def test_sparse_gradient_covering_every_row_matches_dense_adamw(clip):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(4, 3)).astype("float32")
    steps = [rng.normal(size=(4, 3)).astype("float32") for _ in range(3)]
    settings = dict(learning_rate=0.01, weight_decay=0.1, **clip)  # clipping active when set
    dense = _run(keras.optimizers.AdamW(**settings), [tf.constant(g) for g in steps], start)
    # Rows out of order and one row split in two slices: deduplicated by summing.
    sparse_steps = [_slices(np.concatenate([g[[2, 0, 3]], g[1:2] / 2, g[1:2] / 2]), [2, 0, 3, 1, 1], 4)
                    for g in steps]
    lazy = _run(LazyAdamW(**settings), sparse_steps, start)
    np.testing.assert_allclose(lazy, dense, rtol=1e-5, atol=1e-6)


def test_untouched_rows_keep_weights_and_moments():
    start = np.ones((6, 3), "float32")
    optimizer = LazyAdamW(learning_rate=0.1, weight_decay=0.5)
    table = keras.Variable(start.copy())
    optimizer.apply([_slices(np.ones((1, 3)), [1], 6)], [table])
    after_first = np.asarray(table).copy()
    # One AdamW step from 1: decay lr * wd = 0.05, Adam step lr * m_hat / sqrt(v_hat) = 0.1.
    np.testing.assert_allclose(after_first[1], 0.85, rtol=1e-5)
    optimizer.apply([_slices(np.ones((1, 3)), [4], 6)], [table])
    after = np.asarray(table)
    np.testing.assert_array_equal(after[[0, 2, 3, 5]], start[[0, 2, 3, 5]])
    # Row 1 does not move at step 2, although its momentum is nonzero; row 4 moved.
    np.testing.assert_array_equal(after[1], after_first[1])
    assert (after[4] < 1).all()
    momentum = np.asarray(optimizer._momentums[0])
    np.testing.assert_array_equal(momentum[[0, 2, 3, 5]], 0)


def test_dense_gradients_are_keras_adamw():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(4, 3)).astype("float32")
    steps = [tf.constant(rng.normal(size=(4, 3)).astype("float32")) for _ in range(3)]
    settings = dict(learning_rate=0.01, weight_decay=0.1, clipnorm=1.0)
    np.testing.assert_array_equal(_run(LazyAdamW(**settings), steps, start),
                                  _run(keras.optimizers.AdamW(**settings), steps, start))


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        LazyAdamW(amsgrad=True)


def test_trains_an_embedding_model_without_densifying(caplog):
    inputs = keras.Input((4,), dtype="int32")
    hidden = keras.layers.Embedding(1000, 8)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(hidden)))
    model.compile(optimizer=LazyAdamW(learning_rate=0.01, clipnorm=1.0), loss="mse")
    table_before = np.asarray(model.layers[1].embeddings).copy()
    x = np.array([[1, 2, 3, 4]] * 8, "int32")
    with tf.device("/cpu:0"):
        model.fit(x, np.ones((8, 1)), epochs=1, verbose=0)
    table_after = np.asarray(model.layers[1].embeddings)
    changed = np.flatnonzero(np.abs(table_after - table_before).sum(axis=1) > 0)
    assert changed.tolist() == [1, 2, 3, 4]
    assert "Converting sparse IndexedSlices" not in caplog.text
