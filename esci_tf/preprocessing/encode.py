"""preprocess_pairs: run a PairPreprocessor over Python sequences of strings in batches."""

import numpy as np

from esci_tf.data.errors import DataError

FEATURE_KEYS = ("token_ids", "segment_ids", "padding_mask")


def _check_strings(values, name):
    values = list(values)
    for row, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(f"{name} must be strings, got {type(value).__name__} {value!r}", path=name, row=row)
    return values


def preprocess_pairs(preprocessor, queries, products, batch_size: int = 1024):
    """(features, num_truncated): features maps token_ids/segment_ids/padding_mask to int32
    numpy arrays [N, max_length]; num_truncated counts pairs that lost tokens to truncation."""
    queries = _check_strings(queries, "queries")
    products = _check_strings(products, "products")
    if len(queries) != len(products):
        raise DataError(f"{len(queries)} queries but {len(products)} product texts")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    parts = {key: [] for key in FEATURE_KEYS}
    num_truncated = 0
    for start in range(0, len(queries), batch_size):
        features, overflow = preprocessor.encode_with_overflow(
            queries[start:start + batch_size], products[start:start + batch_size])
        for key in FEATURE_KEYS:
            parts[key].append(features[key].numpy())
        num_truncated += int(np.count_nonzero(overflow.numpy()))
    if not queries:
        empty = np.zeros((0, preprocessor.max_length), np.int32)
        return {key: empty.copy() for key in FEATURE_KEYS}, 0
    return {key: np.concatenate(parts[key]) for key in FEATURE_KEYS}, num_truncated
