"""Small file helpers shared by the library: JSON on local or gs:// paths, written atomically.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "run", "info.json")
>>> write_json(path, {"steps": 3})
>>> read_json(path)
{'steps': 3}
>>> read_json(path + ".missing") is None
True
"""

import json
import os

import numpy as np
import tensorflow as tf


def is_remote_path(path: str) -> bool:
    """A tf.io.gfile path with a scheme (gs://, s3://, ram://, memory://, ...)."""
    return "://" in str(path)


def join(directory: str, *names: str) -> str:
    """`names` inside a local or remote directory (remote paths always use '/')."""
    if is_remote_path(directory):
        return "/".join([str(directory).rstrip("/"), *names])
    return os.path.join(directory, *names)


def read_json(path: str, missing_ok: bool = True):
    """The JSON value in `path` (local or gs://); None when absent and missing_ok.

    A file that is not valid JSON raises ValueError naming it.
    """
    if not tf.io.gfile.exists(path):
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path} not found")
    with tf.io.gfile.GFile(path) as stream:
        text = stream.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


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
