"""The on-disk TFRecord format: feature names, their types and the shard file names.

Every record is one judged (query, product) pair as a tf.train.Example:
token_ids, segment_ids, padding_mask (int64, max_length each), labels (4 floats, a soft-label
vector in esci_tf.labels order), query_id, example_id, fold (int64) and product_id, locale
(bytes). Shards are GZIP-compressed and named <split>-00000-of-00008.tfrecord.gz.
"""

import re

import tensorflow as tf

from esci_tf.inputs import MODEL_INPUT_KEYS
from esci_tf.labels import NUM_CLASSES

INT_ID_KEYS = ("query_id", "example_id", "fold")
BYTES_KEYS = ("product_id", "locale")
METADATA_KEYS = INT_ID_KEYS + BYTES_KEYS
ALL_KEYS = MODEL_INPUT_KEYS + ("labels",) + METADATA_KEYS

COMPRESSION = "GZIP"
SHARD_SUFFIX = ".tfrecord.gz"
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})" + re.escape(SHARD_SUFFIX) + "$")


def shard_name(split: str, index: int, num_shards: int) -> str:
    """<split>-00003-of-00008.tfrecord.gz"""
    return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def parse_shard_name(name: str):
    """(split, index, num_shards) of a shard file name, or None if it is not one."""
    match = _SHARD_RE.match(name)
    if match is None:
        return None
    return match["split"], int(match["index"]), int(match["count"])


def feature_spec(max_length: int) -> dict:
    """tf.io parsing spec of one record; every feature is required and fixed-size."""
    spec = {key: tf.io.FixedLenFeature([max_length], tf.int64) for key in MODEL_INPUT_KEYS}
    spec["labels"] = tf.io.FixedLenFeature([NUM_CLASSES], tf.float32)
    spec.update({key: tf.io.FixedLenFeature([], tf.int64) for key in INT_ID_KEYS})
    spec.update({key: tf.io.FixedLenFeature([], tf.string) for key in BYTES_KEYS})
    return spec
