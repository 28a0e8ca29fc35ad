"""Soft-label cross-entropy, its per-replica reduction and the target helpers."""

import numpy as np
import pytest
import tensorflow as tf

from esci_tf import labels
from esci_tf.training import losses


def _numpy_soft_ce(y, logits):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(y * log_probs).sum(axis=1)


def test_soft_label_cross_entropy_matches_numpy():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, 4)).astype("float32") * 3
    y = rng.dirichlet(np.ones(4), size=6).astype("float32")
    got = losses.soft_label_cross_entropy(y, logits).numpy()
    assert got.dtype == np.float32 and got.shape == (6,)
    np.testing.assert_allclose(got, _numpy_soft_ce(y, logits), rtol=1e-6, atol=1e-6)


def test_soft_label_cross_entropy_is_float32_for_bfloat16_logits():
    logits = tf.constant([[2.0, 0.5, -1.0, 0.0]], tf.bfloat16)
    y = labels.one_hot([0])
    got = losses.soft_label_cross_entropy(y, logits)
    assert got.dtype == tf.float32
    expected = _numpy_soft_ce(y, tf.cast(logits, tf.float32).numpy())
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_classification_loss_is_weighted_sum_over_batch_size():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(5, 4)).astype("float32")
    y = labels.one_hot([0, 1, 2, 3, 0], label_smoothing=0.1)
    weights = np.array([1.0, 0.0, 2.0, 0.5, 1.0], "float32")
    per_example = _numpy_soft_ce(y, logits)
    loss = losses.classification_loss()
    mean = loss(y, logits).numpy()
    np.testing.assert_allclose(mean, per_example.mean(), rtol=1e-6)
    weighted = loss(y, logits, sample_weight=weights).numpy()
    np.testing.assert_allclose(weighted, (per_example * weights).sum() / 5, rtol=1e-6)
    # One replica's share of the global batch under a strategy: tests/test_training_strategy.py.


def test_label_smoothing_reuses_one_hot():
    got = labels.one_hot([0, 3], label_smoothing=0.2)
    np.testing.assert_allclose(got[0], [0.85, 0.05, 0.05, 0.05], rtol=1e-6)
    in_graph = losses.smooth_targets(labels.one_hot([0, 3]), 0.2).numpy()
    np.testing.assert_allclose(in_graph, got, rtol=1e-6)
    # The loss's own smoothing is the same formula.
    logits = np.array([[1.0, 0.5, -1.0, 0.0], [0.2, 0.1, 0.0, 2.0]], "float32")
    smoothed_loss = losses.classification_loss(0.2)(labels.one_hot([0, 3]), logits).numpy()
    np.testing.assert_allclose(smoothed_loss, _numpy_soft_ce(got, logits).mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.classification_loss(1.0)
