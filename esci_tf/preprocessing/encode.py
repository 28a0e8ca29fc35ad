"""The batch loop of the encoders: PairPreprocessor.encode_in_batches (Python sequences of
formatted strings) and FieldsPreprocessor.encode_in_batches (raw fields) run through it."""

import numpy as np

from esci_tf.errors import DataError
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
    return batched_encode(lambda start, stop: preprocessor.encode_with_overflow(queries[start:stop], products[start:stop]),
                          len(queries), preprocessor.max_length, batch_size, progress)


def batched_encode(encode, num_rows: int, max_length: int, batch_size: int, progress=None) -> tuple:
    """(features, tokens_cut) as numpy from `encode(start, stop)` -> (features dict, overflow) over
    rows [0, num_rows) in batches: int32 [N, max_length] per model input and [N]. The one batch
    loop of PairPreprocessor and FieldsPreprocessor; `progress` is advanced by each batch's size."""
    parts = {key: [np.zeros((0, max_length), np.int32)] for key in MODEL_INPUT_KEYS}
    cut = [np.zeros(0, np.int32)]
    for start in range(0, num_rows, batch_size):
        features, overflow = encode(start, start + batch_size)
        for key in MODEL_INPUT_KEYS:
            parts[key].append(features[key].numpy())
        cut.append(overflow.numpy())
        if progress is not None:
            progress.update(len(cut[-1]))
    return {key: np.concatenate(parts[key]) for key in MODEL_INPUT_KEYS}, np.concatenate(cut)

