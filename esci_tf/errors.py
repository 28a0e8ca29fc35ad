"""The user-error types: bad input data (DataError) and a setting that cannot work (FlagError),
in one module at the library root so every layer raises the same ones.

Entry points (esci_tf.cli) print either as one line, without a traceback.
"""


class DataError(ValueError):
    """Bad input data. `path` and `row` (or record number) say where, when known."""

    def __init__(self, message: str, path=None, row=None):
        where = ""
        if path is not None:
            where = f"{path}"
            if row is not None:
                where += f", row {row}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.row = row


class FlagError(ValueError):
    """A flag or setting that cannot work; the message names the flag (--name)."""
