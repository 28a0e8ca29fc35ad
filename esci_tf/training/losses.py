"""Soft-label cross-entropy and the target vectors that go through it.

Every training target is a [B, 4] probability vector in labels.py order: one-hot labels,
label-smoothed labels, teacher-mixed (self-distillation) labels and pseudo labels all use
the same loss (classification_loss, Keras' CategoricalCrossentropy); the recipe makes the
distillation and pseudo-label targets (esci_tf.recipe.targets). The loss is always
computed in float32, whatever the compute dtype of the logits (bfloat16 on TPU). One-hot and
smoothed numpy targets come from esci_tf.labels.one_hot.
"""

import keras
import tensorflow as tf

from esci_tf import labels


def soft_label_cross_entropy(y_true, logits):
    """Per-example cross-entropy [B] (float32) of logits [B, 4] against soft targets [B, 4]."""
    logits = tf.cast(logits, tf.float32)
    y_true = tf.cast(y_true, tf.float32)
    return tf.nn.softmax_cross_entropy_with_logits(labels=y_true, logits=logits)


def classification_loss(label_smoothing: float = 0.0):
    """The training loss: Keras' categorical cross-entropy from logits against soft targets
    [B, 4], smoothed as (1 - a) * y + a / 4, reduced to sum / batch size and, under
    tf.distribute, divided by the replicas in sync (so the summed replica gradients are the
    global batch mean). float32 whatever the logits' dtype."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing,
                                                name="cross_entropy")


def smooth_targets(y_true, label_smoothing: float):
    """In-graph label smoothing of [B, 4] targets: (1 - a) * y + a / 4 (float32)."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    y_true = tf.cast(y_true, tf.float32)
    return y_true * (1.0 - label_smoothing) + label_smoothing / labels.NUM_CLASSES
