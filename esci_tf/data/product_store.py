"""The product text of a products file on local disk, read back by row: what lets the TFRecord
build stream a catalogue it never holds in memory.

`ProductStore.build` reads the products file piece by piece (esci_tf.data.reader.iter_table:
parquet record batches, csv chunks), checks every piece as validate_products_file does, and
appends each row's five text fields to one binary file; in memory it keeps only the keys
(product_id, product_locale; ~100 bytes a product) and one int64 offset per row. `spans(rows)`
gives the byte ranges of some rows, and `read_fields(path, spans)` (a plain function, so a
worker process needs only the path and the spans) reads their text back with one pread each.

>>> import os, tempfile
>>> import pandas as pd
>>> directory = tempfile.mkdtemp()
>>> products = pd.DataFrame({"product_id": ["B1", "B2"], "product_locale": ["US", "jp"],
...     "product_title": ["Red shoe", "赤い靴"], "product_description": [None, "<p>x</p>"],
...     "product_bullet_point": ["", ""], "product_brand": ["Acme", None], "product_color": ["red", ""]})
>>> products.to_parquet(os.path.join(directory, "products.parquet"))
>>> store, keys = ProductStore.build(os.path.join(directory, "products.parquet"), directory)
>>> keys.to_dict("list")
{'product_id': ['B1', 'B2'], 'product_locale': ['us', 'jp'], 'product_row': [0, 1]}
>>> fields = read_fields(store.path, store.spans([1, 0]))
>>> fields["product_title"].tolist(), fields["product_description"].tolist()
(['赤い靴', 'Red shoe'], ['<p>x</p>', ''])
>>> store.remove()
"""

import os
import struct

import numpy as np
import pandas as pd

from esci_tf import files
from esci_tf.data.validation import PRODUCT_TEXT_COLUMNS, check_unique, validate_product_columns

STORE_FILE = "product_text.bin"
PIECE_ROWS = 16384  # products read and checked per piece (~20 MB of real ESCI text)
_HEADER = struct.Struct("<" + "I" * len(PRODUCT_TEXT_COLUMNS))  # byte length of each field


def _encode(texts) -> bytes:
    encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
    return _HEADER.pack(*map(len, encoded)) + b"".join(encoded)


def _decode(record: bytes) -> list:
    lengths = _HEADER.unpack_from(record)
    texts, offset = [], _HEADER.size
    for length in lengths:
        texts.append(record[offset:offset + length].decode("utf-8", "surrogatepass"))
        offset += length
    return texts


class ProductStore:
    """One products file's text fields in a local binary file (see the module docstring)."""

    def __init__(self, path: str, offsets: np.ndarray):
        self.path = path
        self.offsets = offsets  # int64 [rows + 1]: record i is bytes offsets[i]:offsets[i + 1]

    @classmethod
    def build(cls, products_path, directory: str, piece_rows: int | None = None, name: str = STORE_FILE) -> tuple:
        """(store, keys): the text of every row of `products_path` in <directory>/.tmp.<name>
        (a temporary name: esci_tf.files.remove_temporaries deletes one a killed build left), and
        the checked keys frame (product_id, product_locale normalised, product_row), indexed by file
        row. Raises DataError naming the file and row as validate_products_file does."""
        from esci_tf.data.reader import iter_table, read_table

        products_path = os.fspath(products_path)
        path = os.path.join(directory, files.TEMP_PREFIX + name)
        os.makedirs(directory, exist_ok=True)
        offsets, keys, position = [np.zeros(1, np.int64)], [], 0
        try:
            with open(path, "wb") as stream:
                pieces = iter_table(products_path, piece_rows or PIECE_ROWS)
                first = next(pieces, None)
                if first is None:  # no rows at all: the whole-file checks name what is wrong
                    first = read_table(products_path)
                for piece in _chain(first, pieces):
                    piece = validate_product_columns(piece, products_path)
                    records = [_encode(texts) for texts in
                               zip(*(piece[column].tolist() for column in PRODUCT_TEXT_COLUMNS))]
                    stream.write(b"".join(records))
                    sizes = np.fromiter(map(len, records), np.int64, len(records))
                    offsets.append(position + np.cumsum(sizes))
                    position += int(sizes.sum())
                    keys.append(piece[["product_id", "product_locale"]])
            keys = pd.concat(keys) if keys else pd.DataFrame(columns=["product_id", "product_locale"])
            check_unique(keys, ["product_id", "product_locale"], products_path)
        except BaseException:
            if os.path.exists(path):
                os.remove(path)
            raise
        keys = keys.assign(product_row=np.arange(len(keys), dtype=np.int64))
        return cls(path, np.concatenate(offsets)), keys

    def spans(self, rows) -> np.ndarray:
        """int64 [N, 2]: the (start, end) bytes of these product rows' records."""
        rows = np.asarray(rows, np.int64)
        return np.stack([self.offsets[rows], self.offsets[rows + 1]], axis=1)

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)


def _chain(first, rest):
    yield first
    yield from rest


def read_fields(path: str, spans) -> dict:
    """{product text column: object array} of the records at `spans` (ProductStore.spans), in order."""
    spans = np.asarray(spans, np.int64).reshape(-1, 2)
    columns = [[] for _ in PRODUCT_TEXT_COLUMNS]
    descriptor = os.open(path, os.O_RDONLY)
    try:
        for start, end in spans.tolist():
            for column, text in zip(columns, _decode(os.pread(descriptor, end - start, start))):
                column.append(text)
    finally:
        os.close(descriptor)
    return {name: np.array(values, dtype=object) for name, values in zip(PRODUCT_TEXT_COLUMNS, columns)}
