"""A translation table backend: a parquet (or csv) of translations made by any MT system, with the
columns source_language, target_language, source_text, translated_text (languages as ESCI locales
us/es/jp or codes en/es/ja). A text the table lacks has no translation (None: counted as failed
by trainers.translate). One source text listed twice with different translations is an error
naming both rows.

>>> import os, tempfile, pandas as pd
>>> path = os.path.join(tempfile.mkdtemp(), "table.parquet")
>>> pd.DataFrame({"source_language": ["es"], "target_language": ["us"], "source_text": ["negro"],
...               "translated_text": ["black"]}).to_parquet(path)
>>> TableTranslator(path).translate(["negro", "rojo"], "es", "en")
['black', None]
"""

import pandas as pd

from esci_tf import files
from esci_tf.errors import DataError
from esci_tf.data.translation.base import Translator, language_of

TABLE_COLUMNS = ("source_language", "target_language", "source_text", "translated_text")


def write_table(rows, path: str) -> None:
    """rows of (source_language, target_language, source_text, translated_text) as a table
    parquet, written atomically."""
    files.write_parquet(path, pd.DataFrame(list(rows), columns=list(TABLE_COLUMNS)))


class TableTranslator(Translator):
    """Looks translations up in a table file (see the module docstring)."""

    name = "table"
    max_segments = 100_000
    max_request_chars = batch_chars = 10_000_000

    def __init__(self, path: str):
        from esci_tf.data.reader import read_table
        from esci_tf.data.validation import require_columns

        self.path = path
        frame = read_table(path)
        require_columns(frame, TABLE_COLUMNS, path)
        self._fingerprint = files.fingerprint(path)
        languages = {}
        for column in ("source_language", "target_language"):
            for value in frame[column].unique():
                try:
                    languages[value] = language_of(value)
                except ValueError as error:
                    row = int((frame[column] == value).to_numpy().argmax())
                    raise DataError(f"{column}: {error}", path=path, row=row) from None
        for column in ("source_text", "translated_text"):
            missing = frame[column].isna().to_numpy()
            if missing.any():
                raise DataError(f"{column} is empty", path=path, row=int(missing.argmax()))
        self.table = {}
        first_row = {}
        for row, (source, target, text, translation) in enumerate(frame[list(TABLE_COLUMNS)].itertuples(index=False)):
            key = (languages[source], languages[target], str(text))
            if key in self.table and self.table[key] != translation:
                raise DataError(f"{key[0]}->{key[1]} {text[:60]!r} has two translations (rows {first_row[key]} "
                                f"and {row})", path=path, row=row)
            self.table[key] = str(translation)
            first_row.setdefault(key, row)

    def identity(self) -> dict:
        return {"backend": self.name, "table": self._fingerprint}

    def translate(self, texts, source, target) -> list:
        return [self.table.get((source, target, text)) for text in texts]
