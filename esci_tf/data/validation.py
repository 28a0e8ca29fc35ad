"""Checks for the Shopping Queries tables, and the report of rows dropped in skip mode.

File-level problems (missing columns, wrong dtypes, duplicate ids, bad flag values) always
raise DataError. Row-level problems raise in "raise" mode, or are dropped and counted per
reason in "skip" mode (the count goes into summary.json / metrics.json):
- empty_query: blank; in labeled examples (training data) also a query with nothing left after
  cleaning (esci_tf.preprocessing.cleaning.clean_texts: emoji only, ...), which would train as "";
  prediction input keeps those, and the model scores them as the SavedModel does;
- unknown_label, unknown_locale, missing_product (examples), product_unknown_locale (products);
- query_id_conflict: one query_id with different query strings (skip: all its rows go);
- labeled examples only (training data, not prediction input), a (query_id, product_id,
  product_locale) pair listed more than once: conflicting_labels when the copies disagree
  (skip: every copy goes, no label is trusted), duplicate_pair when they agree (a pair counted
  twice in training and evaluation; skip: the first row is kept).
Rows are numbered from 0 in file order, header excluded.
"""

import dataclasses

import numpy as np
import pandas as pd

from esci_tf.preprocessing.cleaning import clean_texts
from esci_tf.errors import DataError
from esci_tf.labels import is_known_label
from esci_tf.special_tokens import LOCALES

EXAMPLE_COLUMNS = (
    "example_id",
    "query",
    "query_id",
    "product_id",
    "product_locale",
    "esci_label",
    "small_version",
    "large_version",
    "split",
)
PRODUCT_TEXT_COLUMNS = (
    "product_title",
    "product_description",
    "product_bullet_point",
    "product_brand",
    "product_color",
)
PRODUCT_COLUMNS = ("product_id",) + PRODUCT_TEXT_COLUMNS + ("product_locale",)
SOURCE_COLUMNS = ("query_id", "source")
SPLITS = ("train", "test")
ON_BAD_ROWS = ("raise", "skip")
MAX_LISTED = 5  # offending rows named in one message

# Row-level reasons: the only ones "skip" mode may drop.
EMPTY_QUERY = "empty_query"
UNKNOWN_LABEL = "unknown_label"
UNKNOWN_LOCALE = "unknown_locale"
MISSING_PRODUCT = "missing_product"
PRODUCT_UNKNOWN_LOCALE = "product_unknown_locale"
QUERY_ID_CONFLICT = "query_id_conflict"
CONFLICTING_LABELS = "conflicting_labels"
DUPLICATE_PAIR = "duplicate_pair"
PAIR_KEY = ("query_id", "product_id", "product_locale")


@dataclasses.dataclass
class DropReport:
    """Rows dropped in skip mode: count and ids (example ids, or product ids) per reason."""

    counts: dict = dataclasses.field(default_factory=dict)
    ids: dict = dataclasses.field(default_factory=dict)

    def add(self, reason: str, ids) -> None:
        ids = [_plain(i) for i in ids]
        if not ids:
            return
        self.counts[reason] = self.counts.get(reason, 0) + len(ids)
        self.ids.setdefault(reason, []).extend(ids)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict:
        return {"total": self.total, "counts": dict(self.counts), "ids": {k: list(v) for k, v in self.ids.items()}}

    def __str__(self) -> str:
        if not self.counts:
            return "no rows dropped"
        parts = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.counts.items()))
        return f"dropped {self.total} rows ({parts})"


def _plain(value):
    """numpy scalars -> Python values, so reports serialise as JSON."""
    return value.item() if isinstance(value, np.generic) else value


def describe_rows(df: pd.DataFrame, mask, column) -> tuple[int, str]:
    """(first offending row, "row 3 (query_id='x'), row 7 (...)") for the rows where mask holds.

    `column` is a column name or a list of them (shown as a tuple).
    """
    bad = df.index[np.asarray(mask, dtype=bool)]
    if isinstance(column, str):
        name, value = column, lambda i: _plain(df.at[i, column])
    else:
        name = "(" + ", ".join(column) + ")"
        value = lambda i: tuple(_plain(df.at[i, c]) for c in column)  # noqa: E731
    shown = ", ".join(f"row {i} ({name}={value(i)!r})" for i in bad[:MAX_LISTED])
    if len(bad) > MAX_LISTED:
        shown += f" and {len(bad) - MAX_LISTED} more"
    return int(bad[0]), shown


def map_unique(values: pd.Series, function) -> pd.Series:
    """function applied once per distinct value (ids, labels, locales repeat a lot)."""
    uniques = values.unique()
    return values.map(dict(zip(uniques, (function(v) for v in uniques))))


def _normalize_flag(value: str) -> str:
    return value.strip().lower()


def require_columns(df: pd.DataFrame, columns, path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}", path=path
        )


def to_integer_column(df: pd.DataFrame, column: str, path) -> pd.Series:
    """The column as int64; raises naming the first rows that are not integer-like."""
    values = df[column]
    if pd.api.types.is_bool_dtype(values):
        bad = np.ones(len(values), dtype=bool)
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        finite = numeric.notna().to_numpy() & np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
        integral = np.zeros(len(values), dtype=bool)
        integral[finite] = np.mod(numeric.to_numpy(dtype=float, na_value=np.nan)[finite], 1) == 0
        bad = ~integral
    if bad.any():
        row, shown = describe_rows(df, bad, column)
        raise DataError(f"column {column} must hold integers; bad values at {shown}", path=path, row=row)
    return pd.to_numeric(values).astype("int64")


def to_string_column(df: pd.DataFrame, column: str, path, allow_missing: bool) -> pd.Series:
    """The column as Python str (missing -> "" when allowed); raises on non-string values."""
    values = df[column]
    missing = values.isna().to_numpy()
    if isinstance(values.dtype, pd.StringDtype):
        not_str = np.zeros(len(values), dtype=bool)
    else:
        objects = values.to_numpy(dtype=object)
        not_str = np.fromiter((not isinstance(v, str) for v in objects), bool, len(objects)) & ~missing
    if not_str.any():
        row, shown = describe_rows(df, not_str, column)
        raise DataError(f"column {column} must hold strings; bad values at {shown}", path=path, row=row)
    if missing.any() and not allow_missing:
        row, shown = describe_rows(df, missing, column)
        raise DataError(f"column {column} has missing values at {shown}", path=path, row=row)
    return pd.Series(np.where(missing, "", values.to_numpy(dtype=object)), index=df.index, dtype=object)


def check_unique(df: pd.DataFrame, columns, path) -> None:
    """Raises naming the rows that share the first duplicated key."""
    columns = list(columns)
    dup = df.duplicated(subset=columns, keep=False).to_numpy()
    if not dup.any():
        return
    dups = df.loc[dup, columns]
    first = dups.iloc[0]
    same = dups.index[(dups == first).all(axis=1).to_numpy()]
    value = _plain(first.iloc[0]) if len(columns) == 1 else tuple(_plain(v) for v in first)
    name = columns[0] if len(columns) == 1 else "(" + ", ".join(columns) + ")"
    raise DataError(
        f"duplicate {name} {value!r} at rows {', '.join(map(str, same[:MAX_LISTED]))}"
        f" ({int(dup.sum())} rows have a duplicated {name})",
        path=path,
        row=int(same[0]),
    )


def check_flag_column(df: pd.DataFrame, column: str, allowed, path) -> None:
    bad = ~df[column].isin(list(allowed)).to_numpy()
    if bad.any():
        row, shown = describe_rows(df, bad, column)
        raise DataError(f"column {column} must be one of {sorted(allowed)}; bad values at {shown}", path=path, row=row)


def validate_examples_file(df: pd.DataFrame, path, require_labels: bool = True) -> pd.DataFrame:
    """File-level checks of an examples table; returns it with typed columns."""
    required = [c for c in EXAMPLE_COLUMNS if require_labels or c != "esci_label"]
    require_columns(df, required, path)
    df = df.copy()
    for column in ("example_id", "query_id", "small_version", "large_version"):
        df[column] = to_integer_column(df, column, path)
    df["product_id"] = to_string_column(df, "product_id", path, allow_missing=False)
    df["query"] = to_string_column(df, "query", path, allow_missing=True)
    df["product_locale"] = map_unique(to_string_column(df, "product_locale", path, allow_missing=True), _normalize_flag)
    df["split"] = map_unique(to_string_column(df, "split", path, allow_missing=False), _normalize_flag)
    if "esci_label" in df.columns:
        df["esci_label"] = to_string_column(df, "esci_label", path, allow_missing=True)
    check_flag_column(df, "small_version", (0, 1), path)
    check_flag_column(df, "large_version", (0, 1), path)
    check_flag_column(df, "split", SPLITS, path)
    check_unique(df, ["example_id"], path)
    return df


def validate_products_file(df: pd.DataFrame, path) -> pd.DataFrame:
    """File-level checks of a products table; returns it with text columns as str ("" if missing)."""
    df = validate_product_columns(df, path)
    check_unique(df, ["product_id", "product_locale"], path)
    return df


def validate_product_columns(df: pd.DataFrame, path) -> pd.DataFrame:
    """The checks of validate_products_file that look at one row at a time (all but the unique
    (product_id, product_locale)), so a products file can be checked piece by piece (its
    index: file row numbers); returns the piece typed."""
    require_columns(df, PRODUCT_COLUMNS, path)
    df = df.copy()
    df["product_id"] = to_string_column(df, "product_id", path, allow_missing=False)
    empty_id = (map_unique(df["product_id"], str.strip) == "").to_numpy()
    if empty_id.any():
        row, shown = describe_rows(df, empty_id, "product_id")
        raise DataError(f"empty product_id at {shown}", path=path, row=row)
    df["product_locale"] = map_unique(to_string_column(df, "product_locale", path, allow_missing=True), _normalize_flag)
    for column in PRODUCT_TEXT_COLUMNS:
        df[column] = to_string_column(df, column, path, allow_missing=True)
    return df


def validate_sources_file(df: pd.DataFrame, path) -> pd.DataFrame:
    """Checks a sources table (query_id, source); returns it typed, one row per query_id."""
    require_columns(df, SOURCE_COLUMNS, path)
    df = df[list(SOURCE_COLUMNS)].copy()
    df["query_id"] = to_integer_column(df, "query_id", path)
    df["source"] = to_string_column(df, "source", path, allow_missing=True)
    check_unique(df, ["query_id"], path)
    return df


class RowChecker:
    """Applies row-level checks: raises at the first bad rows, or drops and records them."""

    def __init__(self, on_bad_rows: str, report: DropReport):
        if on_bad_rows not in ON_BAD_ROWS:
            raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
        self.on_bad_rows = on_bad_rows
        self.report = report

    def apply(self, df, bad, reason, column, path, message, id_column="example_id"):
        """Returns df without the rows where `bad` holds (skip mode) or raises (raise mode)."""
        bad = np.asarray(bad, dtype=bool)
        if not bad.any():
            return df
        if self.on_bad_rows == "raise":
            row, shown = describe_rows(df, bad, column)
            raise DataError(
                f"{message} ({reason}, {int(bad.sum())} rows) at {shown}; "
                "pass --on_bad_rows=skip to drop and count such rows",
                path=path,
                row=row,
            )
        self.report.add(reason, df.loc[bad, id_column].tolist())
        return df[~bad]


def _empty_queries(queries: pd.Series, after_cleaning: bool) -> np.ndarray:
    """True where a query is blank or (after_cleaning) cleans to nothing; each distinct query
    is cleaned once, in batches."""
    unique = queries.unique()
    texts = clean_texts(unique) if after_cleaning else [str(q) for q in unique]
    empty = dict(zip(unique, (not text.strip() for text in texts)))
    return queries.map(empty).to_numpy(dtype=bool)


def check_example_rows(df: pd.DataFrame, path, checker: RowChecker, require_labels: bool = True) -> pd.DataFrame:
    """Row-level checks of selected examples (see the module docstring)."""
    df = checker.apply(
        df, _empty_queries(df["query"], after_cleaning=require_labels), EMPTY_QUERY, "query", path,
        "empty query (blank, or nothing left after cleaning: emoji or symbols only)" if require_labels
        else "empty query",
    )
    if "esci_label" in df.columns:
        known = map_unique(df["esci_label"], is_known_label).to_numpy(dtype=bool)
        if not require_labels:
            known = known | (df["esci_label"] == "").to_numpy()
        df = checker.apply(df, ~known, UNKNOWN_LABEL, "esci_label", path, "unknown esci_label")
    df = checker.apply(
        df, ~df["product_locale"].isin(LOCALES).to_numpy(), UNKNOWN_LOCALE, "product_locale", path,
        f"unknown product_locale (expected one of {', '.join(LOCALES)})",
    )
    strings = df.groupby("query_id")["query"].transform("nunique").to_numpy()
    df = checker.apply(df, strings > 1, QUERY_ID_CONFLICT, ["query_id", "query"], path,
                       "one query_id with different query strings")
    if require_labels and "esci_label" in df.columns:
        key = list(PAIR_KEY)
        labels = df.groupby(key)["esci_label"].transform("nunique").to_numpy()
        df = checker.apply(df, labels > 1, CONFLICTING_LABELS, key + ["esci_label"], path,
                           "the same (query_id, product_id, product_locale) pair with different labels")
        df = checker.apply(df, df.duplicated(subset=key, keep="first").to_numpy(), DUPLICATE_PAIR, key, path,
                           "the same (query_id, product_id, product_locale) pair again, same label "
                           "(--on_bad_rows=skip keeps the first row)")
    return df


def check_product_rows(df: pd.DataFrame, path, checker: RowChecker) -> pd.DataFrame:
    """Row-level check of products: locale."""
    return checker.apply(
        df, ~df["product_locale"].isin(LOCALES).to_numpy(), PRODUCT_UNKNOWN_LOCALE, "product_locale", path,
        f"unknown product_locale (expected one of {', '.join(LOCALES)})", id_column="product_id",
    )


def check_has_pairs(merged: pd.DataFrame, path, num_rows: int, task: str, split, report: DropReport) -> None:
    """DataError saying why no pairs are left: an empty file, no rows of the task and split, or
    every selected row dropped as bad."""
    if not merged.empty:
        return
    if not num_rows:
        raise DataError("the file has no rows", path=path)
    selection = f"task {task}" + (f", split {split}" if split else "")
    if report.total:
        raise DataError(f"no pairs of {selection} left: {report}", path=path)
    raise DataError(f"no pairs of {selection} among its {num_rows} rows", path=path)
