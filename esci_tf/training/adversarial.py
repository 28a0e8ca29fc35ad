"""Adversarial perturbations for training: FGM (embedding table) and AWP (weights).

Both perturb variables in place for one extra forward/backward pass and then restore
them bit-exactly from a saved copy (never by subtracting the perturbation). Variables are
written the way Keras optimizers write them (a merge call and `extended.update`), so the
same code runs with no strategy, MirroredStrategy and TPUStrategy, inside tf.function and
under XLA. Perturbations are computed from the gradient summed over replicas, so every
replica applies the same perturbation, as with synchronised data-parallel training.
"""

import re

import keras
import tensorflow as tf

# AWP default: the kernels of the attention and feed-forward dense layers of every
# backbone transformer block, by keras-hub variable path (BERT, XLM-R, RemBERT:
# transformer_layer_N/...; DeBERTa-v3: disentangled_attention_encoder_layer_N/...). Head
# layers (pooler, classifier, query cross-attention) are not perturbed.
DEFAULT_AWP_TARGETS = (
    r"_layer_\d+/(self_attention_layer/(query|key|value|attention_output)"
    r"|feedforward_(intermediate|output)_dense)/kernel$"
)

_TINY = 1e-12


def _do_nothing():
    return None


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def update_variable(variable, update_fn, *args):
    """Runs update_fn(tf.Variable, *args) on every replica's copy of `variable`.

    Called in replica context (or with no strategy) like an optimizer update; `args` may
    hold per-replica values, each replica's copy gets its own.
    """

    def merge_fn(strategy, tf_variable, *merged_args):
        strategy.extended.update(tf_variable, update_fn, args=merged_args, group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(
        merge_fn, tf.distribute.get_strategy(), _tf_variable(variable), *args
    )


def all_reduce_sum(values):
    """Sums a list of tensors / IndexedSlices (or None) over replicas; identity on one."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(values)
    present = [v for v in values if v is not None]
    if not present:
        return list(values)
    reduced = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if v is None else next(reduced) for v in values]


def _safe_scale(numerator, norm):
    """numerator / norm, or 0 when the norm is 0 or not finite (no perturbation)."""
    ok = tf.logical_and(norm > 0.0, tf.math.is_finite(norm))
    return tf.where(ok, numerator / tf.maximum(norm, _TINY), tf.zeros_like(norm))


def summed_rows(gradient: tf.IndexedSlices):
    """Sorted row indices [N], first-occurrence mask [N], per-occurrence summed rows [N, D].

    Sums the rows of duplicated indices (one token used several times in a batch) without
    tf.unique, so it compiles under XLA (static shapes). Row k of the third output is the
    full gradient row of index k, present at every occurrence.
    """
    indices = tf.cast(gradient.indices, tf.int32)
    order = tf.argsort(indices, stable=True)
    sorted_indices = tf.gather(indices, order)
    sorted_values = tf.gather(gradient.values, order)
    count = tf.shape(sorted_indices)[0]
    first = tf.logical_or(
        tf.not_equal(sorted_indices, tf.roll(sorted_indices, shift=1, axis=0)),
        tf.equal(tf.range(count), 0),
    )
    segments = tf.cumsum(tf.cast(first, tf.int32)) - 1
    sums = tf.math.unsorted_segment_sum(sorted_values, segments, count)
    return sorted_indices, first, tf.gather(sums, segments)


class FGMPerturbation:
    """Fast Gradient Method on the word-embedding table: E += epsilon * g / ||g||.

    `perturb(gradient)` applies the perturbation for the clean gradient of the table
    (tf.Tensor or IndexedSlices, summed over replicas here) and returns a `restore()`
    function that writes the saved values back bit-exactly. For IndexedSlices only the
    rows used in the batch are saved and rewritten. No state is kept on the object: under
    MirroredStrategy every replica traces the step in its own thread.
    """

    def __init__(self, table, epsilon: float):
        if epsilon <= 0:
            raise ValueError(f"fgm_epsilon must be > 0, got {epsilon}")
        self.table = table
        self.epsilon = float(epsilon)

    def perturb(self, gradient):
        if gradient is None:
            raise ValueError(
                f"FGM: no gradient for the word-embedding table {self.table.path}; "
                "is it trainable and used by the model?"
            )
        (gradient,) = all_reduce_sum([gradient])
        table = _tf_variable(self.table)
        if isinstance(gradient, tf.IndexedSlices):
            rows, first, row_grads = summed_rows(gradient)
            row_grads = tf.cast(row_grads, tf.float32)
            first_rows = tf.where(first[:, None], row_grads, tf.zeros_like(row_grads))
            scale = _safe_scale(self.epsilon, tf.norm(first_rows))
            delta = tf.cast(first_rows * scale, table.dtype)
            saved = tf.gather(table, rows)
            update_variable(
                self.table, lambda v, i, d: v.scatter_add(tf.IndexedSlices(d, i)), rows, delta
            )
            return lambda: update_variable(
                self.table, lambda v, i, s: v.scatter_update(tf.IndexedSlices(s, i)), rows, saved
            )
        gradient = tf.cast(gradient, tf.float32)
        scale = _safe_scale(self.epsilon, tf.norm(gradient))
        delta = tf.cast(gradient * scale, table.dtype)
        saved = tf.identity(table)
        update_variable(self.table, lambda v, d: v.assign_add(d), delta)
        return lambda: update_variable(self.table, lambda v, s: v.assign(s), saved)


def select_awp_variables(variables, targets=DEFAULT_AWP_TARGETS):
    """The variables AWP perturbs: `targets` is a regex searched in variable.path, or a
    callable(variable) -> bool. Raises ValueError when nothing matches."""
    if callable(targets):
        chosen = [v for v in variables if targets(v)]
        description = getattr(targets, "__name__", repr(targets))
    else:
        pattern = re.compile(targets)
        chosen = [v for v in variables if pattern.search(v.path)]
        description = f"regex {targets!r}"
    if not chosen:
        sample = ", ".join(v.path for v in list(variables)[:8])
        raise ValueError(
            f"awp_targets ({description}) matched no trainable variable; "
            f"variable paths look like: {sample}"
        )
    return chosen


def _awp_new_value(variable, gradient, learning_rate, epsilon):
    """w + lr * g / ||g|| * ||w||, clipped to [w - eps*|w|, w + eps*|w|]."""
    w = tf.cast(variable, tf.float32)
    g = tf.cast(gradient, tf.float32)
    step = g * _safe_scale(learning_rate * tf.norm(w), tf.norm(g))
    bound = epsilon * tf.abs(w)
    new = tf.clip_by_value(w + step, w - bound, w + bound)
    return tf.cast(new, variable.dtype)


class AWPPerturbation:
    """Adversarial Weight Perturbation of chosen weights, applied only when `active`.

    `perturb(gradients, active)` perturbs each variable by awp_lr * g / ||g|| * ||w||
    clipped to w +/- awp_eps * |w| when the boolean tensor `active` is true (tf.cond on
    each replica, no host round trip) and returns a `restore()` function that writes the
    saved values back (again only when `active`). No state is kept on the object.
    """

    def __init__(self, variables, learning_rate: float, epsilon: float):
        if learning_rate <= 0 or epsilon <= 0:
            raise ValueError(
                f"awp_lr and awp_eps must be > 0, got awp_lr={learning_rate}, awp_eps={epsilon}"
            )
        self.variables = list(variables)
        self.learning_rate = float(learning_rate)
        self.epsilon = float(epsilon)

    def perturb(self, gradients, active):
        gradients = all_reduce_sum(
            [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in gradients]
        )
        saved_values = []
        for variable, gradient in zip(self.variables, gradients):
            if gradient is None:
                saved_values.append(None)
                continue
            saved_values.append(tf.identity(_tf_variable(variable)))

            def perturb_fn(v, g, on):
                def apply():
                    v.assign(_awp_new_value(v, g, self.learning_rate, self.epsilon))

                tf.cond(on, apply, _do_nothing)

            update_variable(variable, perturb_fn, gradient, active)
        return lambda: self._restore(saved_values, active)

    def _restore(self, saved_values, active):
        for variable, saved in zip(self.variables, saved_values):
            if saved is None:
                continue

            def restore_fn(v, s, on):
                def apply():
                    v.assign(s)

                tf.cond(on, apply, _do_nothing)

            update_variable(variable, restore_fn, saved, active)
