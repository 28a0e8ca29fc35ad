"""A persistent translation cache: sqlite3, one row per (backend, source, target, exact text).

Every batch of answers is committed in one transaction as soon as it arrives, so a run killed
at any point (SIGKILL included) keeps every batch it was answered and loses at most the one in
flight; a rerun asks only for what is missing. sqlite's journal makes a half-written commit
roll back on the next open. The cache is local (sqlite needs a real file system): keep it on
disk next to the outputs, or pass one path to several runs to share it.

>>> import os, tempfile
>>> cache = TranslationCache(os.path.join(tempfile.mkdtemp(), "cache.sqlite"), {"backend": "demo"})
>>> cache.put("es", "en", {"negro": "black"})
>>> cache.get("es", "en", ["negro", "rojo"])
{'negro': 'black'}
>>> len(cache)
1
"""

import json
import os
import sqlite3

from esci_tf.data.translation.base import TranslatorSetupError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    backend TEXT NOT NULL, source TEXT NOT NULL, target TEXT NOT NULL, text TEXT NOT NULL,
    translation TEXT NOT NULL, PRIMARY KEY (backend, source, target, text))
"""
_LOOKUP_CHUNK = 500  # sqlite's bound-parameter limit is 999 on old builds


class TranslationCache:
    """Translations already paid for, keyed by the backend's identity, the two language codes
    and the exact source text."""

    def __init__(self, path: str, backend_identity: dict):
        if "://" in str(path):
            raise TranslatorSetupError(f"--cache={path}: the translation cache is a local sqlite file; "
                                       "give a local path")
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.path = path
        self.backend = json.dumps(backend_identity, sort_keys=True)
        try:
            self.connection = sqlite3.connect(path)
            self.connection.execute(_SCHEMA)
            self.connection.commit()
        except sqlite3.DatabaseError as error:
            raise TranslatorSetupError(f"--cache={path}: not a usable sqlite translation cache ({error})") from error

    def get(self, source: str, target: str, texts) -> dict:
        """{text: translation} of the texts the cache holds."""
        found = {}
        texts = list(texts)
        for start in range(0, len(texts), _LOOKUP_CHUNK):
            chunk = texts[start:start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self.connection.execute(
                f"SELECT text, translation FROM translations WHERE backend = ? AND source = ? AND target = ? "
                f"AND text IN ({marks})", [self.backend, source, target, *chunk])
            found.update(rows)
        return found

    def put(self, source: str, target: str, translations: dict) -> None:
        """Store {text: translation} and commit (one transaction)."""
        with self.connection:
            self.connection.executemany(
                "INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?)",
                [(self.backend, source, target, text, value) for text, value in translations.items()])

    def __len__(self) -> int:
        return self.connection.execute("SELECT COUNT(*) FROM translations WHERE backend = ?",
                                       [self.backend]).fetchone()[0]

    def close(self) -> None:
        self.connection.close()
