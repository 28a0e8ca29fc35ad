"""Soft-label cross-entropy and the target vectors that go through it.

Every training target is a [B, 4] probability vector in labels.py order: one-hot labels,
label-smoothed labels, teacher-mixed (self-distillation) labels and pseudo labels all use
the same loss. The loss is always computed in float32, whatever the compute dtype of the
logits (bfloat16 on TPU).
"""

import numpy as np
import tensorflow as tf

from esci_tf import labels


def soft_label_cross_entropy(y_true, logits):
    """Per-example cross-entropy [B] (float32) of logits [B, 4] against soft targets [B, 4]."""
    logits = tf.cast(logits, tf.float32)
    y_true = tf.cast(y_true, tf.float32)
    return tf.nn.softmax_cross_entropy_with_logits(labels=y_true, logits=logits)


def replica_loss(y_true, logits, sample_weight=None, global_batch_size=None):
    """The loss one replica minimises: sum over its batch / global batch size.

    Summing this over replicas gives the mean loss of the global batch, which is what
    tf.distribute (and Keras' "sum_over_batch_size" reduction) expects: gradients are
    summed across replicas, so each replica must scale by the global batch size, not its
    own. With no strategy the result is the plain batch mean. `global_batch_size` defaults
    to the replica batch size times the number of replicas in sync.
    """
    per_example = soft_label_cross_entropy(y_true, logits)
    if sample_weight is not None:
        sample_weight = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return tf.nn.compute_average_loss(
        per_example, sample_weight=sample_weight, global_batch_size=global_batch_size
    )


def smoothed_targets(label_indices, label_smoothing: float = 0.0) -> np.ndarray:
    """[N, 4] float32 targets for integer labels: (1 - a) * one_hot + a / 4."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    return labels.one_hot(label_indices, label_smoothing=label_smoothing)


def smooth_targets(y_true, label_smoothing: float):
    """In-graph label smoothing of [B, 4] targets: (1 - a) * y + a / 4 (float32)."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    y_true = tf.cast(y_true, tf.float32)
    return y_true * (1.0 - label_smoothing) + label_smoothing / labels.NUM_CLASSES


def teacher_probabilities(teacher_logits, temperature: float = 1.0):
    """Softmax of teacher logits [B, 4] at a temperature, in float32."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1)


def mix_with_teacher(y_true, teacher_probs, alpha: float):
    """Self-distillation targets alpha * y + (1 - alpha) * teacher_probs (float32, [B, 4]).

    Works on numpy arrays and tensors alike; alpha = 1 keeps the labels, alpha = 0 keeps
    the teacher.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if isinstance(y_true, np.ndarray) and isinstance(teacher_probs, np.ndarray):
        if y_true.shape != teacher_probs.shape:
            raise ValueError(
                f"labels {y_true.shape} and teacher probabilities {teacher_probs.shape} "
                "must have the same shape"
            )
        mixed = alpha * y_true.astype(np.float32) + (1.0 - alpha) * teacher_probs
        return mixed.astype(np.float32)
    y_true = tf.cast(y_true, tf.float32)
    teacher_probs = tf.cast(teacher_probs, tf.float32)
    return alpha * y_true + (1.0 - alpha) * teacher_probs
