"""Run a PairPreprocessor over Python sequences of strings in batches."""

import numpy as np

from esci_tf.data.errors import DataError
from esci_tf.inputs import MODEL_INPUT_KEYS


def _check_strings(values, name):
    values = list(values)
    for row, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(f"{name} must be strings, got {type(value).__name__} {value!r}", path=name, row=row)
    return values


def encode_in_batches(preprocessor, queries, products, batch_size: int = 1024, progress=None):
    """(features, tokens_cut): int32 numpy arrays [N, max_length] per feature, and the tokens
    truncation cut from each pair [N]. The one batching loop over a PairPreprocessor; `progress`
    (e.g. a tqdm bar) is advanced by each batch's size."""
    queries = _check_strings(queries, "queries")
    products = _check_strings(products, "products")
    if len(queries) != len(products):
        raise DataError(f"{len(queries)} queries but {len(products)} product texts")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not queries:
        empty = np.zeros((0, preprocessor.max_length), np.int32)
        return {key: empty.copy() for key in MODEL_INPUT_KEYS}, np.zeros(0, np.int32)
    parts = {key: [] for key in MODEL_INPUT_KEYS}
    cut = []
    for start in range(0, len(queries), batch_size):
        stop = start + batch_size
        features, overflow = preprocessor.encode_with_overflow(queries[start:stop], products[start:stop])
        for key in MODEL_INPUT_KEYS:
            parts[key].append(features[key].numpy())
        cut.append(overflow.numpy())
        if progress is not None:
            progress.update(len(cut[-1]))
    return {key: np.concatenate(parts[key]) for key in MODEL_INPUT_KEYS}, np.concatenate(cut)


def preprocess_pairs(preprocessor, queries, products, batch_size: int = 1024):
    """(features, num_truncated): features maps token_ids/segment_ids/padding_mask to int32
    numpy arrays [N, max_length]; num_truncated counts pairs that lost tokens to truncation."""
    features, tokens_cut = encode_in_batches(preprocessor, queries, products, batch_size)
    return features, int(np.count_nonzero(tokens_cut))
