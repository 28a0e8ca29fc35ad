"""tf.data input pipelines over the TFRecord shards written by esci_tf.records.writer.

make_dataset yields (features, labels):
- pairwise: features token_ids/segment_ids/padding_mask int32 [B, max_length], labels float32
  [B, 4];
- listwise: one element per query list, features [B, list_size, max_length], labels
  [B, list_size, 4] and a bool "list_mask" [B, list_size] that is False on padding rows.
With include_metadata (default: when not training) the features also carry query_id,
example_id, fold (int64), product_id, locale (string), shaped [B] or [B, list_size]; padding
rows of a list have query_id = example_id = fold = -1 and empty strings.

Listwise mode needs each query's rows in one shard (esci_tf.records.writer guarantees it). A query
with more than list_size products is an error by default (long_lists="error": evaluation needs
each whole list exactly once); long_lists="split" cuts it into chunks of list_size instead.
Lists shorter than list_size are emitted when their shard ends, so a shard's short lists are
held in memory (as serialized records) while it is read.

Pairwise datasets can use static length buckets (length_buckets=(32, 64, 128)): each record
goes to the smallest bucket holding its real tokens (up to its last padding_mask 1), its
token_ids/segment_ids/padding_mask are cut to that bucket's length, and every batch holds
records of one bucket, so each batch has one of a few static shapes [B, bucket] (a handful of
compiled programs on XLA/TPU) and short pairs cost less. Only padding is cut. Records keep
their (shuffled) order within a bucket; with drop_remainder each bucket drops its last partial
batch when the data ends (repeat=True: leftovers carry into the next pass, nothing is lost).

The shards' max_length must be the one asked for (check_built_max_length: summary.json, when
tfrecords.build wrote one next to them, and the first record), else a DataError names the file.
"""

import dataclasses
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from esci_tf.errors import DataError
from esci_tf.records import schema
from esci_tf.records.summary import SUMMARY_FILE
from esci_tf.records.shards import check_shards, list_shards  # noqa: F401  (public API)

AUTOTUNE = tf.data.AUTOTUNE
_READ_BUFFER_BYTES = 8 << 20
_PADDING_VALUES = {"query_id": -1, "example_id": -1, "fold": -1, "product_id": "", "locale": ""}
_PARSE_CHUNK = 256  # records parsed together before bucketing (parse_example is much faster per batch)


def _cast_inputs(parsed: dict) -> dict:
    """Model inputs as int32, as the models take them."""
    return {key: tf.cast(value, tf.int32) if key in schema.MODEL_INPUT_KEYS else value for key, value in parsed.items()}


def _fold_filter(folds, exclude_folds):
    """A predicate on a fold tensor, or None when every fold is kept."""
    if folds is None and exclude_folds is None:
        return None
    keep = tf.constant(list(folds), tf.int64) if folds is not None else None
    drop = tf.constant(list(exclude_folds), tf.int64) if exclude_folds is not None else None

    def predicate(fold):
        ok = tf.constant(True)
        if keep is not None:
            ok = tf.logical_and(ok, tf.reduce_any(tf.equal(fold, keep)))
        if drop is not None:
            ok = tf.logical_and(ok, tf.logical_not(tf.reduce_any(tf.equal(fold, drop))))
        return ok

    return predicate


def _split_features(include_metadata: bool, listwise: bool):
    def split(parsed):
        keys = list(schema.MODEL_INPUT_KEYS)
        if listwise:
            keys.append("list_mask")
        if include_metadata:
            keys.extend(schema.METADATA_KEYS)
        return {key: parsed[key] for key in keys}, parsed["labels"]

    return split


def check_built_max_length(paths, max_length: int) -> None:
    """DataError naming the file and both lengths when shards were built at another max_length:
    the summary.json tfrecords.build wrote next to them, then the first record of each directory
    (reading them at the wrong length would fail inside tf.data without naming a file)."""
    for directory in sorted({os.path.dirname(path) for path in paths}):
        summary_path = os.path.join(directory, SUMMARY_FILE)
        if tf.io.gfile.exists(summary_path):
            with tf.io.gfile.GFile(summary_path) as stream:
                built = json.load(stream).get("settings", {}).get("max_length")
            if built is not None and built != max_length:
                raise DataError(f"the shards in {directory} were built with max_length {built}, but they are "
                                f"read with --max_length={max_length}; pass --max_length={built} or rebuild them",
                                path=summary_path)
        for path in sorted(p for p in paths if os.path.dirname(p) == directory):
            stored = _stored_max_length(tf.data.TFRecordDataset(path, compression_type=schema.COMPRESSION))
            if stored:
                if stored != max_length:
                    raise DataError(f"records are {stored} tokens long (built with max_length {stored}), but "
                                    f"they are read with --max_length={max_length}; pass --max_length={stored} "
                                    "or rebuild the shards", path=path)
                break


def _shard_for_input_pipeline(files, num_files, batch_size, input_context):
    """This input pipeline's shard files and its per-replica batch size."""
    pipelines = input_context.num_input_pipelines
    if num_files < pipelines:
        raise ValueError(
            f"{num_files} shard files cannot feed {pipelines} input pipelines; "
            f"rebuild with --num_shards >= {pipelines}"
        )
    files = files.shard(pipelines, input_context.input_pipeline_id)
    return files, input_context.get_per_replica_batch_size(batch_size)


def _fold_of(serialized):
    return tf.io.parse_single_example(serialized, {"fold": tf.io.FixedLenFeature([], tf.int64)})["fold"]


def _pairwise_records(files, keep_fold, training, seed, shuffle_buffer_size, deterministic, cycle_length):
    """Serialized records, shuffled when training; parsing happens per batch (much faster)."""
    records = files.interleave(
        lambda path: tf.data.TFRecordDataset(path, schema.COMPRESSION, _READ_BUFFER_BYTES),
        cycle_length=cycle_length,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    if training:
        records = records.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    if keep_fold is not None:
        records = records.filter(lambda serialized: keep_fold(_fold_of(serialized)))
    return records


def check_length_buckets(length_buckets, max_length: int) -> tuple:
    """length_buckets as a sorted tuple of ints; the largest must be max_length."""
    try:
        buckets = tuple(int(b) for b in length_buckets)
    except (TypeError, ValueError) as e:
        raise ValueError(f"length_buckets must be integers, got {length_buckets!r}") from e
    if not buckets:
        raise ValueError("length_buckets is empty; pass None for fixed max_length batches")
    if list(buckets) != sorted(set(buckets)) or buckets[0] < 1:
        raise ValueError(f"length_buckets must be positive and strictly increasing, got {buckets}")
    if buckets[-1] != max_length:
        raise ValueError(
            f"the largest of length_buckets {buckets} must equal max_length={max_length} "
            "(longer buckets waste work, shorter ones would cut real tokens)")
    return buckets


def _real_length(padding_mask):
    """Tokens up to and including the last non-zero padding_mask entry (the length kept)."""
    positions = tf.range(1, tf.shape(padding_mask)[-1] + 1, dtype=padding_mask.dtype)
    return tf.reduce_max(tf.where(padding_mask > 0, positions, tf.zeros_like(positions)))


def _bucketed_batches(records, spec, buckets, batch_size, drop_remainder, deterministic):
    """Parsed records grouped by length bucket into batches cut to the bucket's length."""
    widths = tf.constant(buckets, tf.int32)

    def with_bucket(parsed):
        bucket = tf.searchsorted(widths, _real_length(parsed["padding_mask"])[None], side="left")[0]
        return tf.cast(bucket, tf.int64), parsed

    def to_batches(bucket, window):
        width = tf.gather(widths, bucket)
        batches = window.map(lambda _b, parsed: parsed).batch(batch_size, drop_remainder=drop_remainder)
        return batches.map(
            lambda parsed: {key: value[:, :width] if key in schema.MODEL_INPUT_KEYS else value
                            for key, value in parsed.items()})

    parsed = records.batch(_PARSE_CHUNK).map(
        lambda serialized: _cast_inputs(tf.io.parse_example(serialized, spec)),
        num_parallel_calls=AUTOTUNE, deterministic=deterministic).unbatch()
    return parsed.map(with_bucket).group_by_window(
        key_func=lambda bucket, _parsed: bucket, reduce_func=to_batches, window_size=batch_size)


def _pad_list(parsed: dict, list_size: int) -> dict:
    """Pads every [n, ...] tensor of one list to [list_size, ...] and adds list_mask."""
    n = tf.shape(parsed["query_id"])[0]
    padded = {"list_mask": tf.sequence_mask(n, list_size)}
    for key, value in parsed.items():
        paddings = [[0, list_size - n]] + [[0, 0]] * (len(value.shape) - 1)
        value = tf.pad(value, paddings, constant_values=_PADDING_VALUES.get(key, 0))
        padded[key] = tf.ensure_shape(value, [list_size] + value.shape[1:].as_list())
    return padded


def _file_lists(path, max_length, list_size, long_lists, keep_fold):
    """One shard's records grouped into per-query lists (a query's rows lie in one shard)."""
    key_spec = {key: tf.io.FixedLenFeature([], tf.int64) for key in ("query_id", "fold")}
    spec = schema.feature_spec(max_length)
    window_size = list_size if long_lists == "split" else list_size + 1

    def keyed(serialized):
        keys = tf.io.parse_single_example(serialized, key_spec)
        return keys["query_id"], keys["fold"], serialized

    def to_list(query_id, _fold, serialized):
        checks = []
        if long_lists == "error":
            message = (
                f"a query has more than list_size={list_size} products; raise list_size or pass "
                "long_lists='split'. query_id:"
            )
            checks.append(tf.debugging.Assert(tf.size(serialized) <= list_size, [message, query_id[0]]))
        with tf.control_dependencies(checks):
            parsed = _cast_inputs(tf.io.parse_example(serialized, spec))
        return _pad_list(parsed, list_size)

    records = tf.data.TFRecordDataset(path, schema.COMPRESSION, _READ_BUFFER_BYTES).map(keyed)
    if keep_fold is not None:
        records = records.filter(lambda _q, fold, _s: keep_fold(fold))
    grouped = records.group_by_window(
        key_func=lambda query_id, _fold, _s: query_id,
        reduce_func=lambda _key, window: window.batch(window_size),
        window_size=window_size,
    )
    return grouped.map(to_list)


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """How make_dataset reads the shards.

    training: shuffle files and records (seeded), and drop the last partial batch so every
    shape is static. listwise / list_size / long_lists: one element per query list (see the
    module docstring). deterministic: fixed element order (same seed -> same order).
    folds / exclude_folds: keep only / drop these fold numbers. include_metadata: add the id
    features (default: when not training). repeat: loop forever. drop_remainder: default
    `training`. validate: run check_shards first, which names the file and record of any
    unreadable record (tf.data itself stops silently at a truncated GZIP shard). cycle_length:
    shards read in parallel (default min(#shards, 8); fixed, so a deterministic order is the
    same on every machine). input_context: a tf.distribute.InputContext (from
    distribute_datasets_from_function): this pipeline then reads its share of the shards and
    the batch size is the global one. length_buckets: pairwise only; e.g. (32, 64, 128), the
    largest equal to max_length: batches of one length bucket each, cut to that length. None:
    every batch is [B, max_length].
    """

    training: bool = False
    listwise: bool = False
    list_size: int = 64
    long_lists: str = "error"
    deterministic: bool = False
    seed: int = 0
    shuffle_buffer_size: int = 10_000
    include_metadata: Optional[bool] = None
    folds: Optional[tuple] = None
    exclude_folds: Optional[tuple] = None
    repeat: bool = False
    drop_remainder: Optional[bool] = None
    validate: bool = False
    cycle_length: Optional[int] = None
    input_context: object = None
    length_buckets: Optional[tuple] = None

    def check(self, batch_size: int, max_length: int) -> "ReadOptions":
        """ValueError for settings that cannot work; returns the options with buckets checked."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {max_length}")
        if self.listwise and self.list_size < 1:
            raise ValueError(f"list_size must be at least 1, got {self.list_size}")
        if self.long_lists not in ("error", "split"):
            raise ValueError(f"long_lists must be 'error' or 'split', got {self.long_lists!r}")
        if self.length_buckets is None:
            return self
        if self.listwise:
            raise ValueError("length_buckets applies to pairwise datasets, not listwise=True")
        return dataclasses.replace(self, length_buckets=check_length_buckets(self.length_buckets, max_length))


def make_dataset(file_pattern, batch_size: int, max_length: int, options: ReadOptions | None = None,
                 **changes) -> tf.data.Dataset:
    """The input pipeline over shards matching file_pattern (see the module docstring), read as
    `options` says; keyword `changes` replace single options (make_dataset(p, 8, 64,
    training=True)). Summary.json (written next to the shards) has "longest_list" per split for
    list_size.
    """
    options = dataclasses.replace(options or ReadOptions(), **changes).check(batch_size, max_length)
    training, listwise, deterministic = options.training, options.listwise, options.deterministic
    seed, list_size = options.seed, options.list_size
    paths = list_shards(file_pattern)
    check_built_max_length(paths, max_length)
    if options.validate:
        check_shards(paths, max_length)
    include_metadata = (not training) if options.include_metadata is None else options.include_metadata
    drop_remainder = training if options.drop_remainder is None else options.drop_remainder
    keep_fold = _fold_filter(options.folds, options.exclude_folds)

    files = tf.data.Dataset.list_files(paths, shuffle=training, seed=seed)
    if options.input_context is not None:
        files, batch_size = _shard_for_input_pipeline(files, len(paths), batch_size, options.input_context)
    cycle_length = options.cycle_length or min(len(paths), 8)
    if listwise:
        rows = files.interleave(
            lambda path: _file_lists(path, max_length, list_size, options.long_lists, keep_fold),
            cycle_length=cycle_length,
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
        if training:
            rows = rows.shuffle(max(1, options.shuffle_buffer_size // list_size), seed=seed,
                                reshuffle_each_iteration=True)
    else:
        rows = _pairwise_records(files, keep_fold, training, seed, options.shuffle_buffer_size, deterministic,
                                 cycle_length)
    if options.repeat:
        rows = rows.repeat()
    spec = schema.feature_spec(max_length)
    if options.length_buckets is not None:
        batches = _bucketed_batches(rows, spec, options.length_buckets, batch_size, drop_remainder, deterministic)
    else:
        batches = rows.batch(batch_size, drop_remainder=drop_remainder)
    if not listwise and options.length_buckets is None:
        batches = batches.map(
            lambda serialized: _cast_inputs(tf.io.parse_example(serialized, spec)),
            num_parallel_calls=AUTOTUNE,
            deterministic=deterministic,
        )
    batches = batches.map(_split_features(include_metadata, listwise))
    data_options = tf.data.Options()
    data_options.deterministic = deterministic
    return batches.with_options(data_options).prefetch(AUTOTUNE)


def read_all(file_pattern, max_length=None) -> dict:
    """Every record of the matching shards (sorted file order) as numpy arrays.

    Keys are schema.ALL_KEYS: token_ids/segment_ids/padding_mask int32 [N, max_length], labels
    float32 [N, 4], query_id/example_id/fold int64 [N], product_id/locale str [N] (object).
    max_length defaults to the length stored in the first record.
    """
    paths = list_shards(file_pattern)
    records = tf.data.TFRecordDataset(paths, compression_type=schema.COMPRESSION)
    if max_length is None:
        max_length = _stored_max_length(records)
    spec = schema.feature_spec(max_length)
    chunks = {key: [] for key in schema.ALL_KEYS}
    for batch in records.batch(4096).map(lambda s: _cast_inputs(tf.io.parse_example(s, spec))):
        for key, value in batch.items():
            chunks[key].append(value.numpy())
    if not chunks["query_id"]:
        return _empty_columns(max_length)
    columns = {key: np.concatenate(values) for key, values in chunks.items()}
    for key in schema.BYTES_KEYS:
        columns[key] = np.array([value.decode("utf-8") for value in columns[key]], dtype=object)
    return columns


def _stored_max_length(records: tf.data.Dataset) -> int:
    """Length of token_ids in the first record (0 records: 0)."""
    for serialized in records.take(1):
        parsed = tf.io.parse_single_example(serialized, {"token_ids": tf.io.VarLenFeature(tf.int64)})
        return int(tf.shape(parsed["token_ids"].values)[0])
    return 0


def _empty_columns(max_length: int) -> dict:
    columns = {key: np.zeros((0, max_length), np.int32) for key in schema.MODEL_INPUT_KEYS}
    columns["labels"] = np.zeros((0, 4), np.float32)
    columns.update({key: np.zeros((0,), np.int64) for key in schema.INT_ID_KEYS})
    columns.update({key: np.zeros((0,), object) for key in schema.BYTES_KEYS})
    return columns
