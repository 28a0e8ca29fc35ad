"""Listwise loss: hand-computed value, masking of padded items, a listwise training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from esci_tf.labels import GAINS
from esci_tf.training import listwise
from esci_tf.training.training_model import TrainingModel
from run_fixtures import fit_args
from training_fixtures import build_tiny, make_batch, weights_of


def _softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_log_ranking_scores_is_log_expected_gain():
    logits = np.random.default_rng(0).normal(size=(5, 4)).astype("float32") * 3
    expected = np.log(_softmax(logits.astype(np.float64)) @ GAINS)
    np.testing.assert_allclose(listwise.log_ranking_scores(logits).numpy(), expected, rtol=1e-5)


def _hand_loss(targets, logits, mask, weight):
    """The combined loss in plain numpy, written out pair by pair."""
    probs = _softmax(logits.astype(np.float64))
    ce, n = 0.0, 0
    for b in range(mask.shape[0]):
        for i in range(mask.shape[1]):
            if mask[b, i]:
                ce += -(targets[b, i] * np.log(probs[b, i])).sum()
                n += 1
    ce /= n
    ranking = []
    for b in range(mask.shape[0]):
        score = np.log(probs[b] @ GAINS)
        gain = targets[b] @ GAINS
        terms = [np.log1p(np.exp(-(score[i] - score[j])))
                 for i in range(mask.shape[1]) for j in range(mask.shape[1])
                 if mask[b, i] and mask[b, j] and gain[i] > gain[j]]
        ranking.append(np.mean(terms) if terms else 0.0)
    return ce + weight * np.mean(ranking), ce, np.mean(ranking)


def test_combined_loss_matches_hand_computation():
    rng = np.random.default_rng(1)
    targets = np.eye(4, dtype="float32")[[[0, 1, 3, 2], [3, 0, 0, 1]]]
    targets[1, 1] = 0.9 * targets[1, 1] + 0.025  # a label-smoothed row
    mask = np.array([[True, True, True, False], [True, True, True, True]])
    logits = rng.normal(size=(2, 4, 4)).astype("float32")
    total, ce, ranking = listwise.listwise_loss(targets, logits.reshape(8, 4), mask, 0.5)
    want_total, want_ce, want_ranking = _hand_loss(targets, logits, mask, 0.5)
    np.testing.assert_allclose(ce.numpy(), want_ce, rtol=1e-5)
    np.testing.assert_allclose(ranking.numpy(), want_ranking, rtol=1e-5)
    np.testing.assert_allclose(total.numpy(), want_total, rtol=1e-5)


def test_list_mle_option_is_per_item_mean():
    gains = np.array([[1.0, 0.1, 0.0, 0.0]], "float32")
    scores = np.array([[0.5, 0.2, 0.1, 9.0]], "float32")
    mask = np.array([[True, True, True, False]])
    s = scores[0, :3]
    # ListMLE over the label order 0, 1, 2.
    want = -sum(s[k] - np.log(np.exp(s[k:]).sum()) for k in range(3)) / 3
    got = listwise.ranking_loss_per_list(gains, scores, mask, "list_mle").numpy()
    np.testing.assert_allclose(got, [want], rtol=1e-5)
    with pytest.raises(ValueError, match="listwise loss must be one of"):
        listwise.ranking_loss_per_list(gains, scores, mask, "lambda")


def test_padded_items_get_zero_gradient():
    rng = np.random.default_rng(2)
    targets = np.eye(4, dtype="float32")[rng.integers(0, 4, size=(2, 3))]
    mask = np.array([[True, True, False], [True, False, False]])
    logits = tf.Variable(rng.normal(size=(6, 4)).astype("float32"))
    with tf.GradientTape() as tape:
        total, _, _ = listwise.listwise_loss(targets, logits, mask, 1.0)
    grad = tape.gradient(total, logits).numpy().reshape(2, 3, 4)
    assert np.all(grad[~mask] == 0.0)
    assert np.all(np.abs(grad[mask]).sum(-1) > 0)


def _listwise_batch(num_lists, list_size, padded_token=None, seed=0):
    features, labels = make_batch(num_lists * list_size, seed)
    features = {k: v.reshape(num_lists, list_size, -1) for k, v in features.items()}
    mask = np.ones((num_lists, list_size), bool)
    mask[0, -2:] = False
    mask[1, -1:] = False
    if padded_token is not None:  # rewrite the padded rows only
        features["token_ids"][~mask] = padded_token
    features["list_mask"] = mask
    return features, labels.reshape(num_lists, list_size, 4)


def _one_step(features, labels, weight):
    model = build_tiny(seed=3)
    trainer = TrainingModel(model, listwise_loss_weight=weight)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    logs = trainer.train_on_batch(features, labels, return_dict=True)
    return weights_of(model), logs


def test_listwise_step_trains_and_ignores_padded_rows():
    features, labels = _listwise_batch(2, 4)
    before = weights_of(build_tiny(seed=3))
    after, logs = _one_step(features, labels, weight=1.0)
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    # Different tokens in the padded rows: the same update, bit for bit.
    other_features, _ = _listwise_batch(2, 4, padded_token=7)
    assert not np.array_equal(other_features["token_ids"], features["token_ids"])
    other_after, other_logs = _one_step(other_features, labels, weight=1.0)
    for a, b in zip(after, other_after):
        np.testing.assert_array_equal(a, b)
    assert logs["accuracy"] == other_logs["accuracy"]


def test_listwise_predict_flattens_and_pairwise_batch_needs_weight_zero():
    features, labels = _listwise_batch(2, 4)
    trainer = TrainingModel(build_tiny(seed=3), listwise_loss_weight=1.0)
    trainer.compile(optimizer="sgd")
    assert trainer.predict_on_batch(features).shape == (8, 4)
    pair_features, pair_labels = make_batch(4)
    with pytest.raises(ValueError, match="needs listwise batches"):
        trainer.train_on_batch(pair_features, pair_labels)
    with pytest.raises(ValueError, match="listwise_loss_weight must be >= 0"):
        TrainingModel(build_tiny(seed=3), listwise_loss_weight=-1.0)


@pytest.mark.slow
def test_fit_flag_switches_to_listwise_batches(tiny_tfrecords, tmp_path):
    """trainers.fit --listwise_loss_weight trains on listwise batches of the tiny shards."""
    from esci_tf.training.run_data import RunData
    from esci_tf.training.task import RankingTask
    from trainers import fit
    from trainers.flags import fit_flags

    args = fit_args(tiny_tfrecords, tmp_path, "--steps=3", "--listwise_loss_weight=1.0",
                    "--list_size=4")
    fit.FLAGS.unparse_flags()
    fit.FLAGS(args)
    run_data = RunData(f"{tiny_tfrecords}/train-*", f"{tiny_tfrecords}/eval-*", 0, 0, {})
    task = RankingTask(fit_flags.run_config(fit.FLAGS))
    features, labels = next(iter(task.train_dataset(run_data, 0)))
    assert features["list_mask"].shape == (2, 4) and labels.shape == (2, 4, 4)
    metrics = fit.run_with_args(args)
    assert metrics["total_steps"] == 3 and np.isfinite(metrics["final"]["ndcg"])
