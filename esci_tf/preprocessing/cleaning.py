"""Text cleaning from Python: lists of raw values through the cleaning graph.

The one definition of the cleaning is esci_tf.preprocessing.clean_ops (TF ops, so that a
SavedModel cleans exactly as training did); these helpers run it on Python values in batches
for the code that needs cleaned text outside a model (BM25, the bi-encoder, query grouping,
gazetteers). None and NaN clean to "".

>>> clean_texts(["<b>Red</b>&amp;Blue!!! ★ shoes", None, "ＡＢＣ　１２３"])
['Red&Blue! shoes', '', 'ABC 123']
>>> normalize_key("Nike  AIR")
'nike air'
"""

import functools
import math

import pandas as pd

BATCH_SIZE = 4096


def _is_missing(value) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def as_text(value) -> str:
    """A raw field value as a string: None/NaN -> "", other non-strings -> str(value)."""
    if _is_missing(value):
        return ""
    return value if isinstance(value, str) else str(value)


@functools.lru_cache(maxsize=1)
def _clean_batch():
    import tensorflow as tf

    from esci_tf.preprocessing.clean_ops import clean_strings

    return tf.function(clean_strings, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)


def clean_texts(values, batch_size: int = BATCH_SIZE) -> list:
    """The cleaned text of every value, in order."""
    texts = [as_text(v) for v in values]
    out = []
    for start in range(0, len(texts), batch_size):
        cleaned = _clean_batch()(texts[start:start + batch_size]).numpy()
        out += [t.decode("utf-8") for t in cleaned]
    return out


def clean_text(value) -> str:
    """The cleaned text of one value (batch with clean_texts where there are many)."""
    return clean_texts([value])[0]


def normalize_keys(values) -> list:
    """Matching keys: cleaned, casefolded, whitespace collapsed."""
    return [" ".join(t.casefold().split()) for t in clean_texts(values)]


def normalize_key(value) -> str:
    """The matching key of one value ("Nike  AIR" -> "nike air")."""
    return normalize_keys([value])[0]
