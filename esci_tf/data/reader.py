"""Reads the Shopping Queries (ESCI) files and merges examples with products.

Files may be local or remote (gs://, any fsspec URL); parquet or csv (also .csv.gz, .tsv)
by extension. `load_esci` validates them (see esci_tf.data.validation), selects a task and
a split, joins products on (product_id, product_locale), and adds the integer `label`.
"""

import os

import numpy as np
import pandas as pd

from esci_tf.choices import TASKS
from esci_tf.errors import DataError
from esci_tf.data.validation import (
    MISSING_PRODUCT,
    ON_BAD_ROWS,
    PRODUCT_TEXT_COLUMNS,
    SPLITS,
    DropReport,
    RowChecker,
    check_example_rows,
    check_has_pairs,
    check_product_rows,
    validate_examples_file,
    validate_products_file,
    validate_sources_file,
)
from esci_tf.labels import is_known_label, label_index

# Read as text so ids such as ISBN "0425284700" keep their leading zeros and "NA" stays a brand.
_CSV_SUFFIXES = {".csv": ",", ".tsv": "\t"}
_COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")


def _format_of(path: str) -> tuple[str, str | None]:
    """("parquet", None) or ("csv", delimiter) from the file name."""
    name = os.path.basename(str(path)).lower()
    for suffix in _COMPRESSIONS:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith((".parquet", ".pq")):
        return "parquet", None
    for suffix, sep in _CSV_SUFFIXES.items():
        if name.endswith(suffix):
            return "csv", sep
    raise DataError("unknown file type: expected .parquet, .csv or .tsv (optionally compressed)", path=path)


def read_table(path, columns=None) -> pd.DataFrame:
    """One table from a local or remote parquet/csv file, rows numbered from 0 in file order;
    `columns`: only these (all must exist)."""
    path = os.fspath(path)
    kind, sep = _format_of(path)
    # storage_options makes pandas open URLs with fsspec (gcsfs for gs://, which finds credentials as
    # TensorFlow does); without it a parquet URL goes to pyarrow's own GCS client.
    options = {} if "://" in path else None
    try:
        if kind == "parquet":
            df = pd.read_parquet(path, columns=None if columns is None else list(columns), storage_options=options)
        else:
            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                             usecols=None if columns is None else list(columns), storage_options=options)
    except FileNotFoundError as e:
        raise DataError("file not found", path=path) from e
    except DataError:
        raise
    except Exception as e:  # pyarrow / parser / filesystem errors: say which file
        raise DataError(f"cannot read {kind} file: {type(e).__name__}: {e}", path=path) from e
    return df.reset_index(drop=True)


def iter_table(path, batch_rows: int = 65536):
    """The table of `path` (as read_table reads it) in consecutive pieces of at most `batch_rows`
    rows, each indexed by its file row numbers: parquet by record batches (pyarrow), csv by pandas
    chunks, so only one piece is in memory at a time."""
    path = os.fspath(path)
    kind, sep = _format_of(path)
    try:
        if kind == "parquet":
            yield from _parquet_pieces(path, batch_rows)
        else:
            start = 0
            for piece in pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                                     chunksize=batch_rows):
                piece.index = pd.RangeIndex(start, start + len(piece))
                start += len(piece)
                yield piece
    except FileNotFoundError as e:
        raise DataError("file not found", path=path) from e
    except DataError:
        raise
    except Exception as e:  # pyarrow / parser / filesystem errors: say which file
        raise DataError(f"cannot read {kind} file: {type(e).__name__}: {e}", path=path) from e


def _parquet_pieces(path: str, batch_rows: int):
    import pyarrow.parquet as pq

    with _open_binary(path) as stream:
        start = 0
        for batch in pq.ParquetFile(stream).iter_batches(batch_size=batch_rows):
            piece = batch.to_pandas()
            piece.index = pd.RangeIndex(start, start + len(piece))
            start += len(piece)
            yield piece


def table_pieces(path) -> list:
    """The pieces read_piece reads `path` in, for readers that take a file apart (a Beam
    pipeline): (path, row group, first file row) per parquet row group; (path, -1, 0) for the whole
    of a csv file."""
    path = os.fspath(path)
    kind, _ = _format_of(path)
    if kind != "parquet":
        return [(path, -1, 0)]
    import pyarrow.parquet as pq

    try:
        with _open_binary(path) as stream:
            metadata = pq.ParquetFile(stream).metadata
    except FileNotFoundError as e:
        raise DataError("file not found", path=path) from e
    except Exception as e:  # pyarrow / filesystem errors: say which file
        raise DataError(f"cannot read parquet file: {type(e).__name__}: {e}", path=path) from e
    pieces, start = [], 0
    for group in range(metadata.num_row_groups):
        pieces.append((path, group, start))
        start += metadata.row_group(group).num_rows
    return pieces or [(path, -1, 0)]


def read_piece(piece) -> pd.DataFrame:
    """One piece of table_pieces as read_table reads the file, indexed by its file row numbers."""
    path, group, start = piece
    if group < 0:
        return read_table(path)
    import pyarrow.parquet as pq

    try:
        with _open_binary(path) as stream:
            frame = pq.ParquetFile(stream).read_row_group(group).to_pandas()
    except Exception as e:  # pyarrow / filesystem errors: say which file
        raise DataError(f"cannot read parquet file: {type(e).__name__}: {e}", path=path) from e
    frame.index = pd.RangeIndex(start, start + len(frame))
    return frame


def _open_binary(path: str):
    if "://" in path:  # remote: fsspec (gcsfs), as pandas.read_parquet opens it
        import fsspec

        return fsspec.open(path, "rb")
    return open(path, "rb")


def select_task(df: pd.DataFrame, task: str, split: str | None) -> pd.DataFrame:
    """Rows of a task ("1": small_version, "2"/"3": large_version, "all": either) and split."""
    task = str(task)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be None or one of {SPLITS}, got {split!r}")
    if task == "1":
        keep = df["small_version"] == 1
    elif task in ("2", "3"):
        keep = df["large_version"] == 1
    else:
        keep = (df["small_version"] == 1) | (df["large_version"] == 1)
    if split is not None:
        keep &= df["split"] == split
    return df[keep.to_numpy()]


def load_esci(
    examples_path,
    products_path,
    sources_path=None,
    task: str = "1",
    split: str | None = None,
    on_bad_rows: str = "raise",
    require_labels: bool = True,
    products_table: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, DropReport]:
    """Validated, merged examples of one task and split, plus the report of dropped rows.

    The frame has the official example columns, the product_* columns ("" where missing),
    `label` (int, index in esci_tf.labels.LABELS; -1 when labels are absent and
    require_labels=False) and, when sources_path is given, `source` ("" for a query the
    sources file does not list). Row order is file order. `products_table`: the products file
    already read with read_table (it is validated here; products_path names it in errors).
    No pairs left (an empty file, no rows of the task, every row dropped) is a DataError.
    """
    products_path = os.fspath(products_path)

    def checked_products(checker):
        products = read_table(products_path) if products_table is None else products_table
        return check_product_rows(validate_products_file(products, products_path), products_path, checker)

    return load_esci_keys(examples_path, products_path, sources_path, task, split, on_bad_rows, require_labels,
                          product_keys=checked_products)


def load_esci_keys(
    examples_path,
    products_path,
    sources_path=None,
    task: str = "1",
    split: str | None = None,
    on_bad_rows: str = "raise",
    require_labels: bool = True,
    product_keys=None,
) -> tuple[pd.DataFrame, DropReport]:
    """load_esci without the product text: the same rows, order, checks and report, with a
    `product_row` column (the product's row in the products file) in place of the product_*
    text columns. `product_keys(checker)` returns the products' validated (product_id,
    product_locale, product_row) frame after the row checks (esci_tf.data.product_store streams
    the text and builds it), so the examples are checked before the products; load_esci passes the
    whole checked products table, whose columns the join keeps.
    """
    examples, num_rows, checker = _checked_examples(examples_path, task, split, on_bad_rows, require_labels)
    products = product_keys(checker)
    merged = join_products(examples, products, examples_path, os.fspath(products_path), checker, sources_path)
    check_has_pairs(merged, os.fspath(examples_path), num_rows, task, split, checker.report)
    return merged.reset_index(drop=True), checker.report


def _checked_examples(examples_path, task, split, on_bad_rows, require_labels):
    """(the examples of the task and split after the file and row checks, file rows, checker)."""
    if on_bad_rows not in ON_BAD_ROWS:
        raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
    examples_path = os.fspath(examples_path)
    checker = RowChecker(on_bad_rows, DropReport())
    examples = validate_examples_file(read_table(examples_path), examples_path, require_labels)
    num_rows = len(examples)
    examples = select_task(examples, task, split)
    return check_example_rows(examples, examples_path, checker, require_labels), num_rows, checker


def join_products(examples: pd.DataFrame, products: pd.DataFrame, examples_path, products_path,
                  checker: RowChecker, sources_path=None) -> pd.DataFrame:
    """Checked examples left-joined with checked products (every products column they have) on
    (product_id, product_locale) in example order, indexed by example file row; missing products
    raise or are dropped; then the sources and the integer `label`."""
    examples_path = os.fspath(examples_path)
    key = ["product_id", "product_locale"]
    # A left merge keeps the examples' order; their file row numbers go back on as the index.
    merged = examples.assign(_row=examples.index).merge(products, on=key, how="left", indicator=True)
    merged.index = pd.Index(merged.pop("_row").to_numpy())
    missing_product = (merged.pop("_merge") == "left_only").to_numpy()
    merged = checker.apply(
        merged, missing_product, MISSING_PRODUCT, key, examples_path,
        f"no product with this (product_id, product_locale) in {products_path}",
    )
    for column in PRODUCT_TEXT_COLUMNS:
        if column in merged.columns:
            merged[column] = merged[column].fillna("")

    if sources_path is not None:
        sources_path = os.fspath(sources_path)
        sources = validate_sources_file(read_table(sources_path), sources_path)
        merged = merged.merge(sources, on="query_id", how="left", validate="many_to_one")
        merged["source"] = merged["source"].fillna("")

    merged["label"] = _label_column(merged)
    return merged


def _label_column(merged: pd.DataFrame) -> np.ndarray:
    """int64 label indices; -1 where a row has no label (allowed only with require_labels=False)."""
    if "esci_label" not in merged.columns:
        return np.full(len(merged), -1, dtype=np.int64)
    index_of = {v: (label_index(v) if is_known_label(v) else -1) for v in merged["esci_label"].unique()}
    return merged["esci_label"].map(index_of).to_numpy(dtype=np.int64)
