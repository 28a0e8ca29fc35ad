"""Static length buckets of tfrecords.tfrecords_dataset.make_dataset: shapes, coverage, cutting, order."""

import collections
import os

import numpy as np
import pytest

from esci_tf.labels import one_hot
from esci_tf.records import dataset as tfrecords_dataset, writer

MAX_LENGTH = 16
BUCKETS = (4, 8, 16)
BATCH = 5


def bucket_of(length):
    return next(b for b in BUCKETS if length <= b)


def columns_with_lengths(num_rows=150, seed=0):
    """Rows with real lengths 1..16; every 10th row has a hole in its mask (a 0 before a 1)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, MAX_LENGTH + 1, size=num_rows)
    mask = (np.arange(MAX_LENGTH)[None, :] < lengths[:, None]).astype(np.int64)
    for row in range(0, num_rows, 10):
        if lengths[row] >= 3:
            mask[row, lengths[row] - 2] = 0
    query_id = rng.integers(0, 30, size=num_rows)
    return {
        "token_ids": rng.integers(1, 1000, size=(num_rows, MAX_LENGTH)) * mask,
        "segment_ids": rng.integers(0, 2, size=(num_rows, MAX_LENGTH)) * mask,
        "padding_mask": mask,
        "labels": one_hot(rng.integers(0, 4, size=num_rows)),
        "query_id": query_id,
        "example_id": np.arange(num_rows) + 1000,
        "fold": query_id % 3,
        "product_id": np.array([f"B{i:09d}" for i in range(num_rows)], dtype=object),
        "locale": np.array(["us"] * num_rows, dtype=object),
    }, lengths


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("records"))
    columns, lengths = columns_with_lengths()
    writer.write_split(output_dir, "train", columns, num_shards=3)
    return os.path.join(output_dir, "train-*"), columns, lengths


def batches(pattern, take=-1, **kwargs):
    """The dataset's batches as numpy (the first `take` of them; -1: all, finite data only)."""
    args = dict(batch_size=BATCH, max_length=MAX_LENGTH, training=True, deterministic=True,
                seed=3, include_metadata=True, length_buckets=BUCKETS)
    args.update(kwargs)
    return list(tfrecords_dataset.make_dataset(pattern, **args).take(take).as_numpy_iterator())


def test_batches_have_bucket_shapes_and_keep_every_real_token(written):
    pattern, columns, lengths = written
    row_of = {example_id: i for i, example_id in enumerate(columns["example_id"])}
    seen = batches(pattern, take=60, repeat=True)
    assert {features["token_ids"].shape for features, _ in seen} == {(BATCH, b) for b in BUCKETS}
    for features, labels in seen:
        width = features["token_ids"].shape[1]
        assert labels.shape == (BATCH, 4)
        for j, example_id in enumerate(features["example_id"]):
            row = row_of[example_id]
            assert bucket_of(lengths[row]) == width  # the smallest bucket that holds it
            assert not columns["padding_mask"][row, width:].any()  # only padding was cut
            for key in ("token_ids", "segment_ids", "padding_mask"):
                np.testing.assert_array_equal(features[key][j], columns[key][row, :width])
            np.testing.assert_array_equal(labels[j], columns["labels"][row])


def test_one_pass_without_drop_remainder_yields_every_pair_once(written):
    pattern, columns, _ = written
    ids = np.concatenate([f["example_id"] for f, _ in batches(pattern, drop_remainder=False)])
    assert sorted(ids.tolist()) == sorted(columns["example_id"].tolist())


def test_drop_remainder_only_drops_each_buckets_last_partial_batch(written):
    pattern, columns, lengths = written
    seen = batches(pattern)
    ids = np.concatenate([f["example_id"] for f, _ in seen])
    assert len(set(ids.tolist())) == len(ids)
    per_bucket = collections.Counter(bucket_of(n) for n in lengths)
    assert len(ids) == sum(n // BATCH * BATCH for n in per_bucket.values())


def test_repeated_stream_covers_each_bucket_pass_by_pass(written):
    """Leftovers carry over between passes: in each bucket, every run of (bucket size)
    consecutive pairs is one whole pass over that bucket's pairs."""
    pattern, columns, lengths = written
    members = collections.defaultdict(list)
    for example_id, length in zip(columns["example_id"], lengths):
        members[bucket_of(length)].append(int(example_id))
    stream = collections.defaultdict(list)
    for features, _ in batches(pattern, take=100, repeat=True):
        stream[features["token_ids"].shape[1]].extend(features["example_id"].tolist())
    for bucket, ids in stream.items():
        size = len(members[bucket])
        assert len(ids) >= size, bucket
        for start in range(0, len(ids) - size + 1, size):
            assert sorted(ids[start:start + size]) == sorted(members[bucket]), (bucket, start)


def test_order_is_seeded(written):
    pattern, _, _ = written

    def order(seed):
        return [f["example_id"].tolist() for f, _ in batches(pattern, seed=seed)]

    assert order(3) == order(3)
    assert order(3) != order(4)


@pytest.mark.parametrize("buckets, message", [
    ((4, 8), "must equal max_length=16"),
    ((8, 4, 16), "strictly increasing"),
    ((0, 16), "positive"),
    (("a", 16), "integers"),
    ((), "empty"),
])
def test_bad_buckets_are_reported(written, buckets, message):
    with pytest.raises(ValueError, match=message):
        tfrecords_dataset.make_dataset(written[0], BATCH, MAX_LENGTH, training=True, length_buckets=buckets)


def test_listwise_buckets_are_refused(written):
    with pytest.raises(ValueError, match="pairwise"):
        tfrecords_dataset.make_dataset(written[0], BATCH, MAX_LENGTH, training=True, listwise=True,
                            length_buckets=BUCKETS)
