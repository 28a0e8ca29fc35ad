"""File helpers shared by the library: local or tf.io.gfile paths (gs://, ...), JSON read with
errors that name the file and written atomically.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "run", "info.json")
>>> write_json(path, {"steps": 3})
>>> read_json(path)
{'steps': 3}
>>> read_json(path + ".missing", missing_ok=True) is None
True
>>> join("gs://bucket/model/", "config.json"), is_remote("gs://bucket/x"), is_remote("hf://org/model")
('gs://bucket/model/config.json', True, False)
"""

import json
import os

import numpy as np
import tensorflow as tf

from esci_tf.data.errors import DataError


# Model hub addresses handled by keras-hub's from_preset, not file systems.
HUB_SCHEMES = ("kaggle://", "hf://", "modelscope://")


def is_remote(path: str) -> bool:
    """A tf.io.gfile file-system path that is not local (gs://, s3://, ram://, ...); model hub
    addresses (kaggle://, hf://) are not file paths."""
    path = str(path)
    return "://" in path and not path.startswith(HUB_SCHEMES)


def join(directory: str, *names: str) -> str:
    """`names` inside a local or remote directory (remote paths always use '/')."""
    if "://" in str(directory):
        return "/".join([str(directory).rstrip("/"), *names])
    return os.path.join(directory, *names)


def read_json(path: str, missing_ok: bool = False):
    """The JSON value in `path` (local or gs://). A missing file is None with missing_ok (else
    FileNotFoundError); a file that is not valid JSON raises DataError naming it."""
    if not tf.io.gfile.exists(path):
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path} not found")
    with tf.io.gfile.GFile(path) as stream:
        text = stream.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON: {error}", path=path) from error


def write_json(path: str, value, indent: int = 2) -> None:
    """Write `value` as JSON to `path`, creating its directory: under a temporary name first,
    then renamed, so a reader never sees a half-written file."""
    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    temporary = f"{path}.tmp"
    with tf.io.gfile.GFile(temporary, "w") as stream:
        json.dump(value, stream, indent=indent, default=json_default)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def json_default(value):
    """JSON for numpy scalars and arrays (json.dump's `default`)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
