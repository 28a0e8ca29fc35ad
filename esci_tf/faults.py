"""Fault injection for the crash-safety tests: ESCI_TF_FAULT=<point>[@<n>][:<signal>] makes
the process send itself a signal the n-th time (default 1st) it reaches a named point.

Points: "checkpoint_write" (a checkpoint's shards are in ckpt-N_temp/, not yet merged),
"best_model_write" (best_model.keras is half-way: written under its temporary name, not yet
renamed), "shard_write" (a TFRecord shard is written under its temporary name, not renamed),
"predictions_write" (a chunk of trainers.predict rows is on disk, its progress not yet recorded).
Signals: KILL (default), TERM, INT (what Ctrl-C sends), or STOP (the process stops alive, holding
its lock, until a SIGKILL or SIGCONT). Unset, `point` is one dictionary lookup; nothing else reads the variable.
"""

import os
import signal

ENV = "ESCI_TF_FAULT"
POINTS = ("checkpoint_write", "best_model_write", "shard_write", "predictions_write")
_reached = {}


def _spec():
    """(point, n, signal number) of ESCI_TF_FAULT, or None."""
    value = os.environ.get(ENV)
    if not value:
        return None
    where, _, signal_name = value.partition(":")
    name, _, count = where.partition("@")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value}: unknown point {name!r}; expected one of {', '.join(POINTS)}")
    return name, int(count or 1), getattr(signal, "SIG" + (signal_name or "KILL").upper())


def point(name: str) -> None:
    """Signal this process if ESCI_TF_FAULT names `name` and this is its n-th arrival."""
    spec = _spec()
    if spec is None or spec[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == spec[1]:
        os.kill(os.getpid(), spec[2])


def arm_checkpoint_write() -> None:
    """With ESCI_TF_FAULT=checkpoint_write..., calls point("checkpoint_write") inside every
    tf.train.Checkpoint save, after the shards are written and before they are merged (TF's
    merge_v2_checkpoints op, called eagerly by its saver)."""
    spec = _spec()
    if spec is None or spec[0] != "checkpoint_write":
        return
    from tensorflow.python.ops import gen_io_ops

    merge = gen_io_ops.merge_v2_checkpoints
    if getattr(merge, "_esci_tf_fault", False):
        return

    def faulty_merge(*args, **kwargs):
        point("checkpoint_write")
        return merge(*args, **kwargs)

    faulty_merge._esci_tf_fault = True
    gen_io_ops.merge_v2_checkpoints = faulty_merge
