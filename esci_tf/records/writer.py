"""Writes one split of tokenized pairs as sharded, GZIP-compressed TFRecords.

Shard assignment is deterministic and keeps every query's rows together, contiguous and in
input order inside one shard (the listwise reader relies on this): queries are dealt, largest
first, to the shard holding the fewest rows so far.
"""

import contextlib
import heapq
import os

import numpy as np
import tensorflow as tf

from esci_tf import files
from esci_tf.labels import NUM_CLASSES
from esci_tf import faults
from esci_tf.records import schema


def assign_shards(query_ids, num_shards: int) -> np.ndarray:
    """Shard index of every row; all rows of a query get the same shard, shards stay balanced."""
    if num_shards < 1:
        raise ValueError(f"--num_shards must be at least 1, got {num_shards}")
    query_ids = np.asarray(query_ids)
    unique, inverse, counts = np.unique(query_ids, return_inverse=True, return_counts=True)
    return query_shards(unique, counts, num_shards)[inverse]


def query_shards(unique, counts, num_shards: int) -> np.ndarray:
    """Shard index of each query of assign_shards from the distinct query ids (ascending) and their
    row counts, for a caller that has only per-query counts (esci_tf.records.beam_build)."""
    # Largest queries first, ties by query id: the same input always gives the same shards.
    order = sorted(range(len(unique)), key=lambda i: (-counts[i], unique[i]))
    loads = [(0, shard) for shard in range(num_shards)]
    shard_of_query = np.zeros(len(unique), dtype=np.int64)
    for i in order:
        load, shard = heapq.heappop(loads)
        shard_of_query[i] = shard
        heapq.heappush(loads, (load + int(counts[i]), shard))
    return shard_of_query


def shard_rows(query_ids, num_shards: int) -> list:
    """Row indices of each shard in write order: a shard's rows stably sorted by query id, so a
    query's rows are contiguous and keep their input order (the one definition of the order)."""
    query_ids = np.asarray(query_ids)
    shards = assign_shards(query_ids, num_shards)
    order = []
    for shard in range(num_shards):
        rows = np.flatnonzero(shards == shard)
        order.append(rows[np.argsort(query_ids[rows], kind="stable")])
    return order


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def serialize_example(row: dict) -> bytes:
    """One tf.train.Example (the schema.feature_spec layout) from a dict of one row's values; the
    same bytes in every process."""
    feature = {key: _int64(row[key]) for key in schema.MODEL_INPUT_KEYS}
    feature["labels"] = tf.train.Feature(float_list=tf.train.FloatList(value=row["labels"]))
    for key in schema.INT_ID_KEYS:
        feature[key] = _int64([int(row[key])])
    for key in schema.BYTES_KEYS:
        feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(row[key]).encode("utf-8")]))
    # deterministic: feature map entries in key order. Without it protobuf (upb) writes them in
    # an order that follows the process's string hash seed, so two processes (or two runs) wrote
    # different bytes for the same record.
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def check_columns(columns: dict) -> int:
    """Validates a split's column arrays (see write_split); returns the row count."""
    missing = [key for key in schema.ALL_KEYS if key not in columns]
    if missing:
        raise ValueError(f"missing columns for TFRecord writing: {', '.join(missing)}")
    num_rows = len(columns["query_id"])
    for key in schema.ALL_KEYS:
        if len(columns[key]) != num_rows:
            raise ValueError(f"column {key!r} has {len(columns[key])} rows, query_id has {num_rows}")
    token_shape = np.shape(columns["token_ids"])
    for key in schema.MODEL_INPUT_KEYS:
        shape = np.shape(columns[key])
        if len(shape) != 2 or shape != token_shape:
            raise ValueError(f"column {key!r} must be [rows, max_length] like token_ids {token_shape}, got {shape}")
    if np.shape(columns["labels"]) != (num_rows, NUM_CLASSES):
        raise ValueError(f"column 'labels' must be [rows, {NUM_CLASSES}], got {np.shape(columns['labels'])}")
    return num_rows


def remove_split_shards(output_dir: str, split: str) -> list:
    """Deletes earlier shards of this split (any shard count) so a rebuild leaves no stale file."""
    removed = []
    pattern = os.path.join(output_dir, f"{split}-*{schema.SHARD_SUFFIX}")
    for path in tf.io.gfile.glob(pattern):
        parsed = schema.parse_shard_name(os.path.basename(path))
        if parsed is not None and parsed[0] == split:
            tf.io.gfile.remove(path)
            removed.append(path)
    return removed


def write_split(output_dir: str, split: str, columns: dict, num_shards: int = 8, progress=None) -> list:
    """Writes `columns` (schema.ALL_KEYS -> arrays of equal length) as num_shards shard files.

    Returns the shard paths in index order. Each file is written under a temporary name and
    renamed when complete (esci_tf.files.atomic_path); `progress` (a tqdm bar or None) is advanced by one per record.
    """
    check_columns(columns)
    tf.io.gfile.makedirs(output_dir)
    remove_split_shards(output_dir, split)
    paths = []
    for shard, rows in enumerate(shard_rows(columns["query_id"], num_shards)):
        path = os.path.join(output_dir, schema.shard_name(split, shard, num_shards))
        with open_shard(path) as writer:
            for i in rows:
                writer.write(serialize_example({key: columns[key][i] for key in schema.ALL_KEYS}))
                if progress is not None:
                    progress.update(1)
        paths.append(path)
    return paths


@contextlib.contextmanager
def open_shard(path: str):
    """A TFRecordWriter (GZIP) on a temporary name, renamed to `path` when the block ends without
    an error (esci_tf.files.atomic_path), so a shard file is complete or absent."""
    options = tf.io.TFRecordOptions(compression_type=schema.COMPRESSION)
    with files.atomic_path(path) as temporary:
        with tf.io.TFRecordWriter(temporary, options) as writer:
            yield writer
        faults.point("shard_write")
