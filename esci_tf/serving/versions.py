"""TF Serving's model layout: <base>/<version>/ with an integer version, written whole or not at all.

TF Serving watches <base> and loads the highest integer-named subdirectory. `write_version`
writes into a temporary sibling (".tmp-<version>-<random>", a name TF Serving ignores) and
renames it to <base>/<version> only when everything is written, so a crash never leaves a half
version that the server would load; an existing version is never overwritten. On a local disk
the rename is atomic; on gs:// TensorFlow renames object by object, so point a server at a
gs:// base only after the export has returned.
"""

import uuid

import tensorflow as tf

from esci_tf import files

TEMP_PREFIX = ".tmp-"


def versions(base: str) -> list:
    """The integer versions present under `base` (sorted; [] when base does not exist)."""
    if not tf.io.gfile.isdir(base):
        return []
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(base)]
    return sorted(int(name) for name in names if name.isdigit())


def next_version(base: str) -> int:
    """One more than the highest version under `base`, or 1."""
    present = versions(base)
    return present[-1] + 1 if present else 1


def version_dir(base: str, version: int | None = None) -> tuple:
    """(version, <base>/<version>) of a version to write: `version`, or the next free one; an
    existing one is an error."""
    if version is None:
        version = next_version(base)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"a TF Serving version is a non-negative integer, got {version!r}")
    path = files.join(base, str(version))
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"{path} exists: TF Serving versions are never overwritten; pick another "
                              f"version (next free: {next_version(base)})")
    return version, path


def write_version(base: str, write, version: int | None = None) -> str:
    """Call `write(directory)` on a temporary directory under `base`, then rename it to
    <base>/<version>; returns that path. A failing `write` leaves no version behind."""
    version, path = version_dir(base, version)
    tf.io.gfile.makedirs(base)
    temporary = files.join(base, f"{TEMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        write(temporary)
        if tf.io.gfile.exists(path):  # another export took the version meanwhile
            raise FileExistsError(f"{path} appeared while exporting: TF Serving versions are never overwritten")
        tf.io.gfile.rename(temporary, path)
    finally:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.rmtree(temporary)
    return path
