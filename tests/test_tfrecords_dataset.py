"""Writer, dataset and shard checks of tfrecords/ on synthetic token arrays."""

import os

import numpy as np
import pytest
import tensorflow as tf

from esci_tf.errors import DataError
from esci_tf.labels import one_hot
from esci_tf.records import dataset as tfrecords_dataset, schema, writer

MAX_LENGTH = 8


def synthetic_columns(num_rows=120, num_queries=25, seed=0):
    """Random columns in the writer's layout; query sizes vary from 1 to ~10 rows."""
    rng = np.random.default_rng(seed)
    query_id = rng.choice(np.arange(num_queries) * 31 + 7, size=num_rows)
    lengths = rng.integers(2, MAX_LENGTH + 1, size=num_rows)
    mask = (np.arange(MAX_LENGTH)[None, :] < lengths[:, None]).astype(np.int64)
    return {
        "token_ids": rng.integers(0, 1000, size=(num_rows, MAX_LENGTH)) * mask,
        "segment_ids": rng.integers(0, 2, size=(num_rows, MAX_LENGTH)) * mask,
        "padding_mask": mask,
        "labels": one_hot(rng.integers(0, 4, size=num_rows), label_smoothing=0.1),
        "query_id": query_id,
        "example_id": rng.permutation(num_rows) + 5000,
        "fold": query_id % 3,
        "product_id": np.array([f"B{i:09d}" for i in range(num_rows)], dtype=object),
        "locale": rng.choice(np.array(["us", "es", "jp"], dtype=object), size=num_rows),
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    output_dir = str(tmp_path_factory.mktemp("records"))
    columns = synthetic_columns()
    paths = writer.write_split(output_dir, "train", columns, num_shards=4)
    return output_dir, columns, paths


def by_example_id(columns):
    order = np.argsort(columns["example_id"])
    return {key: np.asarray(value)[order] for key, value in columns.items()}


def test_round_trip_is_exact(written):
    output_dir, columns, paths = written
    assert [os.path.basename(p) for p in paths] == [f"train-0000{i}-of-00004.tfrecord.gz" for i in range(4)]
    back = by_example_id(tfrecords_dataset.read_all(os.path.join(output_dir, "train-*")))
    expected = by_example_id(columns)
    for key in schema.ALL_KEYS:
        np.testing.assert_array_equal(back[key], expected[key], err_msg=key)
    assert back["token_ids"].dtype == np.int32 and back["labels"].dtype == np.float32


def test_queries_stay_in_one_shard_contiguously(written):
    _, columns, paths = written
    seen = {}
    for shard, path in enumerate(paths):
        query_ids = tfrecords_dataset.read_all(path, MAX_LENGTH)["query_id"]
        runs = query_ids[np.r_[True, query_ids[1:] != query_ids[:-1]]]
        assert len(runs) == len(set(runs)), "a query's rows are not contiguous"
        for q in runs:
            assert seen.setdefault(q, shard) == shard
    assert len(seen) == len(set(columns["query_id"]))
    sizes = [len(tfrecords_dataset.read_all(p, MAX_LENGTH)["query_id"]) for p in paths]
    assert max(sizes) - min(sizes) <= np.bincount(np.unique(columns["query_id"], return_inverse=True)[1]).max()


def test_rebuild_with_fewer_shards_removes_stale_files(tmp_path):
    columns = synthetic_columns(num_rows=30)
    writer.write_split(str(tmp_path), "test", columns, num_shards=4)
    writer.write_split(str(tmp_path), "test", columns, num_shards=2)
    assert sorted(os.listdir(tmp_path)) == ["test-00000-of-00002.tfrecord.gz", "test-00001-of-00002.tfrecord.gz"]


def test_writer_rejects_bad_columns(tmp_path):
    columns = synthetic_columns(num_rows=10)
    columns["labels"] = columns["labels"][:, :3]
    with pytest.raises(ValueError, match="labels"):
        writer.write_split(str(tmp_path), "train", columns)
    del columns["fold"]
    with pytest.raises(ValueError, match="fold"):
        writer.write_split(str(tmp_path), "train", columns)


def test_training_batches_have_static_shapes(written):
    output_dir, _, _ = written
    dataset = tfrecords_dataset.make_dataset(os.path.join(output_dir, "train-*"), 16, MAX_LENGTH, training=True)
    features, labels = dataset.element_spec
    assert set(features) == set(schema.MODEL_INPUT_KEYS)
    for spec in features.values():
        assert spec.shape == (16, MAX_LENGTH) and spec.dtype == tf.int32
    assert labels.shape == (16, 4) and labels.dtype == tf.float32
    assert sum(1 for _ in dataset) == 120 // 16


def test_eval_batches_keep_every_row_with_metadata(written):
    output_dir, columns, _ = written
    dataset = tfrecords_dataset.make_dataset(os.path.join(output_dir, "train-*"), 16, MAX_LENGTH, training=False)
    example_ids, labels = [], []
    for features, batch_labels in dataset:
        assert set(features) == set(schema.MODEL_INPUT_KEYS + schema.METADATA_KEYS)
        example_ids.append(features["example_id"].numpy())
        labels.append(batch_labels.numpy())
    example_ids, labels = np.concatenate(example_ids), np.concatenate(labels)
    assert sorted(example_ids) == sorted(columns["example_id"])
    expected = dict(zip(columns["example_id"], columns["labels"]))
    np.testing.assert_array_equal(labels, np.stack([expected[e] for e in example_ids]))


def test_fold_filters(written):
    output_dir, columns, _ = written
    pattern = os.path.join(output_dir, "train-*")

    def folds_of(**kwargs):
        dataset = tfrecords_dataset.make_dataset(pattern, 7, MAX_LENGTH, training=False, **kwargs)
        return np.concatenate([f["fold"].numpy() for f, _ in dataset])

    assert set(folds_of(folds=[1])) == {1} and len(folds_of(folds=[1])) == np.sum(columns["fold"] == 1)
    assert set(folds_of(exclude_folds=[1])) == {0, 2}


def test_deterministic_order_repeats(written):
    output_dir, _, _ = written
    pattern = os.path.join(output_dir, "train-*")

    def order(seed):
        dataset = tfrecords_dataset.make_dataset(
            pattern, 8, MAX_LENGTH, training=True, deterministic=True, seed=seed, include_metadata=True
        )
        return np.concatenate([f["example_id"].numpy() for f, _ in dataset])

    first = order(seed=3)
    np.testing.assert_array_equal(first, order(seed=3))
    assert not np.array_equal(first, order(seed=4))


def test_listwise_groups_every_example_once(written):
    output_dir, columns, _ = written
    list_size = 12
    dataset = tfrecords_dataset.make_dataset(
        os.path.join(output_dir, "train-*"), 3, MAX_LENGTH, training=False, listwise=True, list_size=list_size,
        deterministic=True,
    )
    features, labels = dataset.element_spec
    assert features["token_ids"].shape[1:] == (list_size, MAX_LENGTH)
    assert features["list_mask"].dtype == tf.bool and labels.shape[1:] == (list_size, 4)
    expected = dict(zip(columns["example_id"], zip(columns["query_id"], columns["labels"])))
    seen_queries, seen_examples = [], []
    for features, labels in dataset:
        mask = features["list_mask"].numpy()
        for i in range(mask.shape[0]):
            n = mask[i].sum()
            assert mask[i, :n].all() and not mask[i, n:].any(), "mask must be a prefix"
            query_ids = features["query_id"].numpy()[i]
            assert len(set(query_ids[:n])) == 1 and (query_ids[n:] == -1).all()
            assert (features["padding_mask"].numpy()[i, n:] == 0).all() and (labels.numpy()[i, n:] == 0).all()
            seen_queries.append(query_ids[0])
            for e, row_labels in zip(features["example_id"].numpy()[i, :n], labels.numpy()[i, :n]):
                seen_examples.append(e)
                assert expected[e][0] == query_ids[0]
                np.testing.assert_array_equal(row_labels, expected[e][1])
    assert sorted(seen_examples) == sorted(columns["example_id"])
    assert sorted(seen_queries) == sorted(set(columns["query_id"])), "each query is exactly one list"


def test_listwise_long_lists_error_or_split(tmp_path):
    columns = synthetic_columns(num_rows=40, num_queries=2)
    writer.write_split(str(tmp_path), "test", columns, num_shards=1)
    pattern = str(tmp_path / "test-*")
    too_small = tfrecords_dataset.make_dataset(pattern, 2, MAX_LENGTH, training=False, listwise=True, list_size=5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than list_size=5"):
        list(too_small)
    split = tfrecords_dataset.make_dataset(pattern, 2, MAX_LENGTH, training=False, listwise=True, list_size=5, long_lists="split")
    counts = [int(m) for f, _ in split for m in f["list_mask"].numpy().sum(axis=1)]
    assert sum(counts) == 40 and max(counts) == 5


def test_listwise_training_shapes_are_static(written):
    output_dir, _, _ = written
    dataset = tfrecords_dataset.make_dataset(
        os.path.join(output_dir, "train-*"), 4, MAX_LENGTH, training=True, listwise=True, list_size=16
    )
    features, labels = dataset.element_spec
    assert features["token_ids"].shape == (4, 16, MAX_LENGTH) and features["list_mask"].shape == (4, 16)
    assert labels.shape == (4, 16, 4)


def _damaged_copy(tmp_path, paths, damage):
    target = tmp_path / os.path.basename(paths[0])
    data = bytearray(open(paths[0], "rb").read())
    target.write_bytes(bytes(damage(data)))
    return str(target)


def test_truncated_shard_names_file_and_record(written, tmp_path):
    _, _, paths = written
    count = tfrecords_dataset.check_shards(paths[0])[paths[0]]
    path = _damaged_copy(tmp_path, paths, lambda data: data[: len(data) // 2])
    with pytest.raises(DataError, match=r"record \d+ cannot be read") as info:
        tfrecords_dataset.check_shards(path)
    assert path in str(info.value) and 0 < info.value.row < count
    with pytest.raises(DataError, match=path):
        tfrecords_dataset.make_dataset(path, 4, MAX_LENGTH, training=False, validate=True)


def test_bit_flipped_shard_names_file_and_record(written, tmp_path):
    _, _, paths = written

    def flip(data):
        data[len(data) // 2] ^= 0x10
        return data

    path = _damaged_copy(tmp_path, paths, flip)
    with pytest.raises(DataError, match=r"record \d+") as info:
        tfrecords_dataset.check_shards(path)
    assert path in str(info.value) and info.value.row is not None


def test_wrong_max_length_is_reported(written):
    _, _, paths = written
    with pytest.raises(DataError, match=r"record 0 is invalid for max_length=9"):
        tfrecords_dataset.check_shards(paths[0], max_length=MAX_LENGTH + 1)


def test_missing_files_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TFRecord shards match"):
        tfrecords_dataset.make_dataset(str(tmp_path / "nothing-*"), 4, MAX_LENGTH, training=True)


def test_input_context_splits_shards_between_pipelines(written):
    output_dir, columns, _ = written
    pattern = os.path.join(output_dir, "train-*")
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        dataset = tfrecords_dataset.make_dataset(pattern, 8, MAX_LENGTH, training=False, input_context=context)
        assert dataset.element_spec[1].shape.as_list() == [None, 4]
        batches = [f["example_id"].numpy() for f, _ in dataset]
        assert max(len(b) for b in batches) == 4, "per-replica batch = global batch / replicas"
        seen.append(np.concatenate(batches))
    assert not set(seen[0]) & set(seen[1])
    assert sorted(np.concatenate(seen)) == sorted(columns["example_id"])
    too_many = tf.distribute.InputContext(num_input_pipelines=5, input_pipeline_id=0, num_replicas_in_sync=5)
    with pytest.raises(ValueError, match="--num_shards >= 5"):
        tfrecords_dataset.make_dataset(pattern, 10, MAX_LENGTH, training=False, input_context=too_many)


def test_max_length_is_checked_against_summary_json(tmp_path):
    writer.write_split(str(tmp_path), "train", synthetic_columns(num_rows=10), num_shards=1)
    (tmp_path / "summary.json").write_text('{"settings": {"max_length": 8}}')
    tfrecords_dataset.make_dataset(str(tmp_path / "train-*"), 2, MAX_LENGTH, training=True)
    with pytest.raises(ValueError, match="built with max_length 8"):
        tfrecords_dataset.make_dataset(str(tmp_path / "train-*"), 2, 16, training=True)
