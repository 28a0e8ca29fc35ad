"""A CSV written in appended pieces that a killed writer continues: what lets trainers.predict
stream millions of rows to one file and pick up where a kill left it.

Rows go to `<name>.partial` next to the output (a local temporary directory for a remote one);
after each piece is on disk (flushed and fsync'd), `<name>.partial.json` records the rows and
bytes written so far and the writer's `identity` (the inputs, model and settings: anything JSON
holds; it is compared as JSON reads it back, so a tuple equals the list it is saved as). A new
writer with the same identity truncates the partial file to the recorded bytes (dropping a piece
that was being written when the kill came) and continues from the recorded row; any other
identity starts over. `finish` moves the complete file to the output in one rename (a copy
for gs://), so the output path only ever holds a complete file.

>>> import os, tempfile
>>> import pandas as pd
>>> path = os.path.join(tempfile.mkdtemp(), "out.csv")
>>> writer = ResumableCSV(path, {"model": "m1"})
>>> writer.append(pd.DataFrame({"a": [1, 2]}))
>>> writer = ResumableCSV(path, {"model": "m1"})  # the same run started again: continues
>>> writer.rows_done
2
>>> writer.append(pd.DataFrame({"a": [3]}))
>>> writer.finish()
>>> open(path).read().split()
['a', '1', '2', '3']
>>> sorted(os.listdir(os.path.dirname(path)))
['out.csv']
>>> ResumableCSV(path + ".2", {"model": "m1"}).append(pd.DataFrame({"a": [1]}))
>>> ResumableCSV(path + ".2", {"model": "m2"}).rows_done  # another model: starts over
0
>>> ResumableCSV(path + ".3", {"files": [("w.h5", 9)]}).append(pd.DataFrame({"a": [1]}))
>>> ResumableCSV(path + ".3", {"files": [("w.h5", 9)]}).rows_done  # tuples saved as JSON lists
1
"""

import hashlib
import json
import os
import tempfile

import tensorflow as tf
from absl import logging

from esci_tf import files
from esci_tf import faults

PARTIAL_SUFFIX = ".partial"
PROGRESS_SUFFIX = ".partial.json"


def partial_path(output: str) -> str:
    """Where the partial file of `output` lives: beside it, or (remote output) in a local
    temporary directory named by the output's path."""
    if not files.is_remote(output):
        return output + PARTIAL_SUFFIX
    digest = hashlib.sha256(output.encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"esci_partial_{digest}", os.path.basename(output) + PARTIAL_SUFFIX)


class ResumableCSV:
    """See the module docstring. `rows_done`: rows already in the file (skip them)."""

    def __init__(self, output: str, identity: dict):
        self.output = output
        self.identity = json.loads(json.dumps(identity, default=files.json_default))  # as it reads back
        self.partial = partial_path(output)
        self.progress_path = self.partial[: -len(PARTIAL_SUFFIX)] + PROGRESS_SUFFIX
        directory = os.path.dirname(self.partial)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.rows_done, self.bytes_done = self._resume()

    def _resume(self) -> tuple:
        try:
            saved = files.read_json(self.progress_path, missing_ok=True)
        except ValueError:  # unreadable: never trusted
            saved = None
        if saved is not None and os.path.exists(self.partial):
            if saved.get("identity") == self.identity and os.path.getsize(self.partial) >= saved["bytes"]:
                with open(self.partial, "r+b") as stream:
                    stream.truncate(saved["bytes"])
                logging.info("%s: continuing after row %d of a killed run", self.output, saved["rows"])
                return int(saved["rows"]), int(saved["bytes"])
            logging.warning("%s: the partial file of another run (other inputs, model or settings) is "
                            "discarded", self.output)
        for path in (self.partial, self.progress_path):
            if os.path.exists(path):
                os.remove(path)
        return 0, 0

    def append(self, table) -> None:
        """Appends the rows of a DataFrame (the header with the first piece), durably."""
        text = table.to_csv(index=False, header=self.bytes_done == 0).encode("utf-8")
        with open(self.partial, "ab") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        faults.point("predictions_write")
        self.rows_done += len(table)
        self.bytes_done += len(text)
        files.write_json(self.progress_path, {"identity": self.identity, "rows": self.rows_done,
                                              "bytes": self.bytes_done})

    def finish(self, output: str | None = None) -> None:
        """Moves the complete file to `output` (default: the writer's) and drops the progress."""
        output = output or self.output
        if self.bytes_done == 0:
            open(self.partial, "ab").close()
        if files.is_remote(output):
            tf.io.gfile.copy(self.partial, output, overwrite=True)
            os.remove(self.partial)
        else:
            os.replace(self.partial, output)
        os.remove(self.progress_path)

    def discard(self) -> None:
        """Removes the partial file and its progress (the caller wrote the output another way)."""
        for path in (self.partial, self.progress_path):
            if os.path.exists(path):
                os.remove(path)
