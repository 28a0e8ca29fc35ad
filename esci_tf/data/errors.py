"""The one error type for bad input data: its message names the file and the row or record."""


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
