"""Cross-validation folds grouped by query, and train/eval leakage checks.

A query is the same query if it has the same query_id or the same normalised text
(clean_text, casefolded, whitespace collapsed): the official data has a few queries whose
text repeats under different ids.
"""

import numpy as np
import pandas as pd

from esci_tf.preprocessing.cleaning import normalize_keys
from esci_tf.errors import DataError

MAX_LISTED = 10


def _require(df: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{name} frame lacks column(s) {', '.join(missing)}")


def assign_folds(df: pd.DataFrame, num_folds: int, seed: int) -> np.ndarray:
    """int32 fold (0..num_folds-1) of each row; all rows of a query share a fold.

    Deterministic for a seed. Queries are shuffled, then placed largest first on the fold
    with the fewest rows of the query's locale (then the fewest rows overall), so folds
    are balanced by rows and by locale.
    """
    _require(df, ["query_id"], "examples")
    if not isinstance(num_folds, (int, np.integer)) or num_folds < 1:
        raise ValueError(f"num_folds must be a positive integer, got {num_folds!r}")
    if len(df) == 0:
        return np.zeros(0, dtype=np.int32)
    locales = df["product_locale"] if "product_locale" in df.columns else pd.Series("", index=df.index)
    groups = pd.DataFrame({"query_id": df["query_id"].to_numpy(), "locale": locales.to_numpy()})
    sizes = groups.groupby("query_id", sort=True).agg(rows=("locale", "size"), locale=("locale", "first"))
    if len(sizes) < num_folds:
        raise ValueError(f"num_folds={num_folds} is more than the {len(sizes)} distinct query_ids")

    order = np.random.default_rng(seed).permutation(len(sizes))
    sizes = sizes.iloc[order]
    sizes = sizes.iloc[np.argsort(-sizes["rows"].to_numpy(), kind="stable")]
    rows_per_fold = np.zeros(num_folds, dtype=np.int64)
    locale_rows = {}
    fold_of_query = {}
    for query_id, n, locale in zip(sizes.index, sizes["rows"].to_numpy(), sizes["locale"].to_numpy()):
        per_locale = locale_rows.setdefault(locale, np.zeros(num_folds, dtype=np.int64))
        fold = int(np.lexsort((rows_per_fold, per_locale))[0])
        fold_of_query[query_id] = fold
        per_locale[fold] += n
        rows_per_fold[fold] += n
    return df["query_id"].map(fold_of_query).to_numpy(dtype=np.int32)


def _query_keys(df: pd.DataFrame) -> pd.Series:
    unique = df["query"].unique()
    return df["query"].map(dict(zip(unique, normalize_keys(unique))))


def leaked_rows(train_df: pd.DataFrame, eval_df: pd.DataFrame) -> np.ndarray:
    """Boolean mask over train_df: rows whose query_id or normalised query is in eval_df."""
    _require(train_df, ["query_id", "query"], "train")
    _require(eval_df, ["query_id", "query"], "eval")
    same_id = train_df["query_id"].isin(set(eval_df["query_id"])).to_numpy()
    same_text = _query_keys(train_df).isin(set(_query_keys(eval_df)) - {""}).to_numpy()
    return same_id | same_text


def check_no_leakage(train_df: pd.DataFrame, eval_df: pd.DataFrame) -> None:
    """Raises DataError listing the eval queries (id and text) that also occur in training."""
    leaked = leaked_rows(train_df, eval_df)
    if not leaked.any():
        return
    pairs = train_df.loc[leaked, ["query_id", "query"]].drop_duplicates("query_id")
    shown = ", ".join(f"{qid} {q!r}" for qid, q in pairs.head(MAX_LISTED).itertuples(index=False))
    more = f" and {len(pairs) - MAX_LISTED} more" if len(pairs) > MAX_LISTED else ""
    raise DataError(
        f"{len(pairs)} training queries ({int(leaked.sum())} rows) also occur in the eval data "
        f"by query_id or normalised text: {shown}{more}"
    )


def remove_leaked_queries(train_df: pd.DataFrame, eval_df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(train_df without rows of queries also in eval_df, number of rows removed)."""
    leaked = leaked_rows(train_df, eval_df)
    return train_df[~leaked], int(leaked.sum())
