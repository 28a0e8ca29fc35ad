"""Translated pairs (trainers.translate) as training-only augmentation, without leakage.

A translated pair carries `original_query_id`, the query it was translated from. It may train
only where its original query trains: `training_rows(augmentation, train, held_out)` keeps the
translations of `train`'s queries, never one of a `held_out` (evaluation, test, out-of-fold)
query, nor one whose query text equals an evaluation query's (esci_tf.data.splits' rule), and
moves their ids past both frames' so no translated pair or query shares an id with a real one.
Evaluation sets are never given augmentation rows: callers add them to training frames only.

>>> import pandas as pd
>>> train = pd.DataFrame({"query_id": [1, 1], "query": ["red shoes", "red shoes"], "example_id": [10, 11]})
>>> held_out = pd.DataFrame({"query_id": [2], "query": ["blue bag"], "example_id": [12]})
>>> augmentation = pd.DataFrame({"query_id": [5, 6, 7], "query": ["zapatos rojos", "bolso azul", "blue bag"],
...                              "example_id": [0, 1, 2], "original_query_id": [1, 2, 9]})
>>> rows, counts = training_rows(augmentation, train, held_out)
>>> rows[["query_id", "example_id", "original_query_id"]].values.tolist(), counts["augment_pairs_added"]
([[3, 13, 1]], 1)
>>> counts["augment_pairs_of_eval_queries"], counts["augment_pairs_of_other_queries"]
(1, 1)
"""

import numpy as np
import pandas as pd

from esci_tf.errors import DataError

ORIGINAL_QUERY_ID = "original_query_id"
ORIGINAL_EXAMPLE_ID = "original_example_id"
SOURCE_LOCALE = "source_locale"


def load_augmentation(examples: str, products: str, task: str = "1", on_bad_rows: str = "raise") -> tuple:
    """(frame, drop report): a translated examples/products pair read and validated like the
    official files (reader.load_esci); it must carry original_query_id."""
    from esci_tf.data.reader import load_esci, read_table
    from esci_tf.data.validation import require_columns

    table = read_table(examples)
    require_columns(table, [ORIGINAL_QUERY_ID], f"{examples} (--augment_examples: a file trainers.translate wrote)")
    frame, report = load_esci(examples, products, task=task, on_bad_rows=on_bad_rows)
    origin = pd.to_numeric(frame[ORIGINAL_QUERY_ID], errors="coerce")
    if origin.isna().any():
        row = int(origin.isna().to_numpy().argmax())
        raise DataError(f"{ORIGINAL_QUERY_ID} is missing or not an integer", path=examples, row=row)
    return frame.assign(**{ORIGINAL_QUERY_ID: origin.to_numpy(np.int64)}), report


def _next_id(frames, column: str) -> int:
    values = [int(f[column].max()) for f in frames if len(f) and column in f.columns]
    return max(values) + 1 if values else 0


def training_rows(augmentation: pd.DataFrame, train: pd.DataFrame, held_out: pd.DataFrame,
                  inherit=()) -> tuple:
    """(rows, counts): the augmentation rows that may join `train` while `held_out` is evaluated
    (see the module docstring). `inherit`: columns copied from each row's original pair in
    `train` (by original_example_id), e.g. soft targets."""
    from esci_tf.data import splits

    origin = augmentation[ORIGINAL_QUERY_ID].to_numpy(np.int64)
    of_eval = np.isin(origin, held_out["query_id"].to_numpy(np.int64))
    of_train = np.isin(origin, train["query_id"].to_numpy(np.int64)) & ~of_eval
    rows = augmentation[of_train]
    # Ids past every real pair's and query's, so no translated query can share an id with one.
    example_start, query_start = _next_id((train, held_out), "example_id"), _next_id((train, held_out), "query_id")
    rows = rows.assign(example_id=example_start + np.arange(len(rows), dtype=np.int64),
                       query_id=query_start + pd.factorize(rows["query_id"], sort=True)[0].astype(np.int64))
    same_text = splits.leaked_rows(rows, held_out) if len(held_out) else np.zeros(len(rows), bool)
    rows = rows[~same_text]
    inherit = [c for c in inherit if c in train.columns]
    if inherit and len(rows):
        if ORIGINAL_EXAMPLE_ID not in rows.columns:
            raise DataError(f"the augmentation rows lack {ORIGINAL_EXAMPLE_ID}, needed to give them their "
                            f"original pair's {', '.join(inherit)}")
        source = train.set_index("example_id")[inherit]
        rows = rows[rows[ORIGINAL_EXAMPLE_ID].isin(source.index).to_numpy()]  # a pair dropped from train
        rows = rows.assign(**{c: source.loc[rows[ORIGINAL_EXAMPLE_ID].to_numpy(), c].to_numpy() for c in inherit})
    counts = {"augment_pairs": int(len(augmentation)), "augment_pairs_added": int(len(rows)),
              "augment_pairs_of_eval_queries": int(of_eval.sum()),
              "augment_pairs_of_other_queries": int((~of_train & ~of_eval).sum()),
              "augment_pairs_matching_eval_text": int(same_text.sum())}
    return rows.reset_index(drop=True), counts
