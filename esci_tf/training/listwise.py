"""Listwise training loss: cross-entropy plus a keras-rs ranking loss over each query's list.

A listwise batch (esci_tf.records.dataset.make_dataset(listwise=True)) holds features
[B, list_size, max_length], soft-label targets [B, list_size, 4] and a bool "list_mask"
[B, list_size] that is False on padding rows. The encoder sees the lists flattened to
[B * list_size, max_length]; the loss is

    mean over valid items of soft-label cross-entropy
    + weight * mean over lists of the keras-rs ranking loss of the items' ranking scores,

where an item's ranking score is log(P(E) * 1 + P(S) * 0.1 + P(C) * 0.01) (the log of the
ESCI expected gain the ranker sorts by, computed stably from the logits) and its ranking label
is its target vector @ labels.GAINS. The ranking loss is normalised per list: the pairwise
logistic loss is averaged over the list's ordered pairs (label_i > label_j), ListMLE over the
list's valid items. Padded items take no part in either term, so their gradients are zero.
"""

import keras_rs
import numpy as np
import tensorflow as tf

from esci_tf.choices import LISTWISE_LOSSES  # defined without TensorFlow, for the flags
from esci_tf.inputs import MODEL_INPUT_KEYS
from esci_tf.labels import GAINS
from esci_tf.training.losses import soft_label_cross_entropy

LIST_MASK_KEY = "list_mask"


def is_listwise_batch(x) -> bool:
    """True for a features dict from the listwise reader (it carries "list_mask")."""
    return isinstance(x, dict) and LIST_MASK_KEY in x


def flatten_lists(x: dict) -> dict:
    """Model inputs [B, L, T] -> [B * L, T] (list_mask and metadata are left out)."""
    missing = [key for key in MODEL_INPUT_KEYS if key not in x]
    if missing:
        raise KeyError(f"listwise features lack {missing}; got keys {sorted(x)}")
    flat = {}
    for key in MODEL_INPUT_KEYS:
        value = x[key]
        flat[key] = tf.reshape(value, tf.concat([[-1], tf.shape(value)[2:]], axis=0))
    return flat


def log_ranking_scores(logits):
    """log(softmax(logits) @ GAINS) per row, float32, stable (the Irrelevant gain 0 drops out)."""
    logits = tf.cast(logits, tf.float32)
    positive = np.flatnonzero(GAINS > 0)
    log_gains = tf.constant(np.log(GAINS[positive]), tf.float32)
    gained = tf.gather(logits, positive, axis=-1) + log_gains
    return tf.reduce_logsumexp(gained, axis=-1) - tf.reduce_logsumexp(logits, axis=-1)


def ranking_loss_per_list(gains, scores, mask, loss_name: str = "pairwise_logistic"):
    """Per-list keras-rs ranking loss [B] of scores [B, L] against gains [B, L] (mask [B, L]).

    pairwise_logistic: mean of log(1 + exp(s_j - s_i)) over the list's pairs with
    gain_i > gain_j (0 for a list with no such pair); list_mle: the ListMLE negative
    log-likelihood divided by the list's number of valid items.
    """
    if loss_name not in LISTWISE_LOSSES:
        raise ValueError(f"listwise loss must be one of {LISTWISE_LOSSES}, got {loss_name!r}")
    gains = tf.cast(gains, tf.float32)
    scores = tf.cast(scores, tf.float32)
    mask = tf.cast(mask, tf.bool)
    y_true = {"labels": gains, "mask": mask}
    if loss_name == "pairwise_logistic":
        per_item = keras_rs.losses.PairwiseLogisticLoss(reduction=None)(y_true, scores)
        total = tf.reduce_sum(per_item, axis=-1)
        both = tf.logical_and(mask[:, :, None], mask[:, None, :])
        ordered = tf.logical_and(both, gains[:, :, None] > gains[:, None, :])
        count = tf.reduce_sum(tf.cast(ordered, tf.float32), axis=[1, 2])
    else:
        total = tf.reshape(keras_rs.losses.ListMLELoss(reduction=None)(y_true, scores), [-1])
        count = tf.reduce_sum(tf.cast(mask, tf.float32), axis=-1)
    return tf.math.divide_no_nan(total, count)


def listwise_loss(y_true, logits, list_mask, weight: float, loss_name: str = "pairwise_logistic"):
    """The replica loss of a listwise batch: (total, cross-entropy part, ranking part).

    y_true [B, L, 4] soft targets, logits [B * L, 4] or [B, L, 4], list_mask [B, L]. Each
    replica returns its mean divided by the number of replicas in sync, so the summed
    gradients are the mean of the replicas' gradients.
    """
    y_true = tf.cast(y_true, tf.float32)
    mask = tf.cast(list_mask, tf.bool)
    shape = tf.shape(mask)
    logits = tf.reshape(tf.cast(logits, tf.float32), tf.concat([shape, [-1]], axis=0))
    valid = tf.cast(mask, tf.float32)
    per_item = soft_label_cross_entropy(
        tf.reshape(y_true, [-1, tf.shape(y_true)[-1]]), tf.reshape(logits, [-1, tf.shape(logits)[-1]])
    )
    per_item = tf.reshape(per_item, shape)
    cross_entropy = tf.math.divide_no_nan(tf.reduce_sum(per_item * valid), tf.reduce_sum(valid))
    ranking = tf.constant(0.0)
    if weight:
        gains = tf.linalg.matvec(y_true, tf.constant(GAINS, tf.float32))
        per_list = ranking_loss_per_list(gains, log_ranking_scores(logits), mask, loss_name)
        has_items = tf.cast(tf.reduce_any(mask, axis=-1), tf.float32)
        ranking = tf.math.divide_no_nan(tf.reduce_sum(per_list * has_items), tf.reduce_sum(has_items))
    replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
    total = (cross_entropy + float(weight) * ranking) / replicas
    return total, cross_entropy, ranking
