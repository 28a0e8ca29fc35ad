"""Batch composition shared by both sides: shuffled fixed-size batches (the peer pads each to
its longest pair, ours to max_length) or length-bucketed batches (ours, static shapes such as
32/64/128 that stay TPU-friendly), handed out round after round from an endless cycle."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Batch:
    """Row indices into the encoded sample and the width (columns) to run them at."""

    indices: np.ndarray
    width: int


def parse_buckets(text: str, max_length: int) -> tuple:
    """"32,64,128" -> (32, 64, 128); the last must be max_length."""
    try:
        buckets = tuple(sorted(int(v) for v in text.split(",") if v.strip()))
    except ValueError as e:
        raise ValueError(f"--buckets must be comma-separated integers, got {text!r}") from e
    if not buckets or buckets[0] < 1 or buckets[-1] != max_length:
        raise ValueError(f"--buckets {text!r} must be positive and end with --max_length {max_length}")
    return buckets


def bucket_width(length: int, buckets: tuple) -> int:
    """The smallest bucket holding `length` tokens."""
    for bucket in buckets:
        if length <= bucket:
            return bucket
    raise ValueError(f"length {length} exceeds the largest bucket {buckets[-1]}")


def _fill(indices: np.ndarray, batch_size: int, rng) -> np.ndarray:
    """Indices padded (by repeating random ones) to a multiple of batch_size."""
    short = (-len(indices)) % batch_size
    return np.concatenate([indices, rng.choice(indices, short)]) if short else indices


def shuffled_batches(lengths: np.ndarray, batch_size: int, seed: int, width=None) -> list:
    """One shuffled epoch of full batches; width None = the batch's longest pair (dynamic
    padding), else the fixed width."""
    if len(lengths) == 0:
        raise ValueError("no pairs to batch")
    rng = np.random.default_rng(seed)
    order = _fill(rng.permutation(len(lengths)), batch_size, rng)
    batches = []
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batches.append(Batch(idx, int(width or lengths[idx].max())))
    return batches


def bucketed_batches(lengths: np.ndarray, batch_size: int, seed: int, buckets: tuple) -> list:
    """One epoch of full batches, each of pairs from one length bucket, batches shuffled."""
    if len(lengths) == 0:
        raise ValueError("no pairs to batch")
    rng = np.random.default_rng(seed)
    widths = np.array([bucket_width(int(n), buckets) for n in lengths])
    batches = []
    for bucket in buckets:
        members = np.flatnonzero(widths == bucket)
        if len(members) == 0:
            continue
        members = _fill(rng.permutation(members), batch_size, rng)
        batches += [Batch(members[s:s + batch_size], bucket) for s in range(0, len(members), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class BatchCycle:
    """Hands out the next n batches of an epoch list, wrapping around."""

    def __init__(self, batches: list):
        if not batches:
            raise ValueError("no batches")
        self.batches = batches
        self.position = 0

    def take(self, n: int) -> list:
        out = [self.batches[(self.position + i) % len(self.batches)] for i in range(n)]
        self.position = (self.position + n) % len(self.batches)
        return out

    def one_per_width(self) -> list:
        """One batch of each distinct width (to compile every shape before timing)."""
        seen = {}
        for batch in self.batches:
            seen.setdefault(batch.width, batch)
        return list(seen.values())


def slice_batch(features: dict, batch: Batch) -> dict:
    """The batch's rows of every feature, cut to its width."""
    return {k: v[batch.indices, :batch.width] for k, v in features.items()}


def keras_dataset(features: dict, targets, batches: list, batch_size: int, fixed_width=None):
    """tf.data.Dataset of (features, targets) (targets None: features only) for `batches`;
    the length dimension is static when every batch has `fixed_width`."""
    import tensorflow as tf

    spec = tf.TensorSpec([batch_size, fixed_width], tf.int32)
    feature_spec = {k: spec for k in features}

    def generate():
        for batch in batches:
            x = slice_batch(features, batch)
            yield (x, targets[batch.indices]) if targets is not None else (x,)

    signature = (feature_spec, tf.TensorSpec([batch_size, 4], tf.float32)) if targets is not None else (feature_spec,)
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # tf.data's autotuner has nothing to tune here (a generator, prefetch 2), but on 2 cores
    # it held each short fit() call at teardown: 10 MiniLM steps took 20.5 s instead of 13.5 s
    # in about half the calls (every round is a new fit() call), so it is off.
    options = tf.data.Options()
    options.autotune.enabled = False
    # A known length lets Keras end the epoch without an "input ran out of data" warning.
    return (dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)
            .with_options(options))
