"""File helpers shared by the library: local or tf.io.gfile paths (gs://, ...), JSON read with
errors that name the file, atomic writes (`atomic_path`: write under a temporary name, then
rename into place) and content fingerprints of input files.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "run", "info.json")
>>> write_json(path, {"steps": 3})
>>> read_json(path)
{'steps': 3}
>>> read_json(path + ".missing", missing_ok=True) is None
True
>>> join("gs://bucket/model/", "config.json"), is_remote("gs://bucket/x"), is_remote("hf://org/model")
('gs://bucket/model/config.json', True, False)
>>> with atomic_path(os.path.join(os.path.dirname(path), "model.keras")) as temporary:
...     print(os.path.basename(temporary), open(temporary, "w").write("weights"))
.tmp.model.keras 7
>>> sorted(os.listdir(os.path.dirname(path)))
['info.json', 'model.keras']
>>> fingerprint(path)["size"]
16
"""

import contextlib
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from esci_tf.errors import DataError


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


# Temporary names start with this (hidden, and never matched by a shard glob such as train-*).
TEMP_PREFIX = ".tmp."


def temporary_path(path: str) -> str:
    """The temporary name `path` is written under before the rename (same directory and suffix,
    so model.save still sees .keras)."""
    directory, name = os.path.split(str(path).rstrip("/"))
    return join(directory, TEMP_PREFIX + name) if directory else TEMP_PREFIX + name


@contextlib.contextmanager
def atomic_path(path: str):
    """Yields a temporary path to write `path`'s content to (a file, or a directory); when the
    block ends without an error it is renamed to `path`, replacing it, so a reader sees the old
    content or the new, never half of it. On an error the temporary is removed. Its directory is
    created. Local renames are atomic; on gs:// a file rename is a copy then a delete of the
    temporary (the object at `path` appears complete or not at all), a directory's is per file."""
    directory = os.path.dirname(str(path).rstrip("/"))
    if directory:
        tf.io.gfile.makedirs(directory)
    temporary = temporary_path(path)
    _remove(temporary)
    try:
        yield temporary
    except BaseException:
        _remove(temporary)
        raise
    if tf.io.gfile.isdir(temporary) and tf.io.gfile.exists(path):
        _remove(path)  # os.rename cannot replace a non-empty directory
    tf.io.gfile.rename(temporary, path, overwrite=True)


def _remove(path: str) -> None:
    if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
    elif tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def remove_temporaries(directory: str, keep=()) -> list:
    """Deletes what a killed writer left in `directory` (its TEMP_PREFIX names, except the paths
    in `keep`: a live writer's); returns them."""
    if not tf.io.gfile.isdir(directory):
        return []
    keep = {os.path.normpath(str(path)) for path in keep}
    stale = [join(directory, name.rstrip("/")) for name in tf.io.gfile.listdir(directory)
             if name.startswith(TEMP_PREFIX)]
    stale = [path for path in stale if os.path.normpath(path) not in keep]
    for path in stale:
        _remove(path)
    return stale


def write_text(path: str, text: str) -> None:
    """Write `text` to `path` atomically (see atomic_path)."""
    with atomic_path(path) as temporary, tf.io.gfile.GFile(temporary, "w") as stream:
        stream.write(text)


def write_parquet(path: str, frame) -> None:
    """Write a pandas frame to `path` (local or gs://) as parquet without its index, atomically
    (see atomic_path)."""
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    with atomic_path(path) as temporary, tf.io.gfile.GFile(temporary, "wb") as stream:
        stream.write(buffer.getvalue())


def write_json(path: str, value, indent: int = 2) -> None:
    """Write `value` as JSON to `path`, creating its directory, atomically (see atomic_path)."""
    with atomic_path(path) as temporary, tf.io.gfile.GFile(temporary, "w") as stream:
        json.dump(value, stream, indent=indent, default=json_default)


_FINGERPRINT_CHUNK = 1 << 22


def fingerprint(path: str) -> dict:
    """{"size": bytes, "sha256": hex} of a file's content (local or gs://): what a cache keyed by
    input content compares."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as stream:
        while chunk := stream.read(_FINGERPRINT_CHUNK):
            digest.update(chunk)
    return {"size": tf.io.gfile.stat(path).length, "sha256": digest.hexdigest()}


def pattern_fingerprint(pattern: str, content: bool = True) -> dict:
    """{"files", "size", "sha256"} of every file a glob pattern matches: a hash of their names
    and contents, or with content=False of their names and sizes only (for inputs too large to
    read at every start, such as prebuilt TFRecords)."""
    paths = sorted(tf.io.gfile.glob(pattern))
    digest, size = hashlib.sha256(), 0
    for path in paths:
        single = fingerprint(path) if content else {"size": tf.io.gfile.stat(path).length}
        size += single["size"]
        digest.update(f"{os.path.basename(path)}:{single.get('sha256', single['size'])}\n".encode())
    return {"files": len(paths), "size": size, "sha256": digest.hexdigest()}


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
