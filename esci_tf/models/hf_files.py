"""Files of a Hugging Face model directory, local or on a tf.io.gfile file system (gs://...).

>>> token_name({"content": "[SEP]", "lstrip": False}, "</s>")
'[SEP]'
"""

import contextlib
import os
import tempfile

import tensorflow as tf

from esci_tf.files import is_remote, read_json

def read_optional_json(path: str) -> dict:
    """A local tokenizer settings file (tokenizer_config.json, ...), {} when it is absent."""
    return read_json(path, missing_ok=True) or {}


def token_name(value, default: str) -> str:
    """A token setting of tokenizer_config.json: a string or an AddedToken-style dict."""
    if isinstance(value, dict):
        return value.get("content", default)
    return value if isinstance(value, str) else default


def sentencepiece_tokenizer(directory: str, file_name: str, family: str, build):
    """`build(proto)` on the SentencePiece model `file_name` of a local directory; errors name
    the file and the family."""
    path = os.path.join(directory, file_name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{directory}: no {file_name} (the SentencePiece model a {family} Hugging Face "
            f"directory must hold)")
    with open(path, "rb") as f:
        proto = f.read()
    try:
        return build(proto)
    except (ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: cannot build the {family} tokenizer: {e}") from e


@contextlib.contextmanager
def local_copy(directory: str, wanted):
    """A local path holding the files of `directory` whose names `wanted(name)` accepts
    (gs:// and other remote directories are copied to a temp dir; local ones are used as is)."""
    if not is_remote(directory):
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="esci_ckpt_") as tmp:
        source = directory.rstrip("/")
        for name in tf.io.gfile.listdir(source):
            name = name.rstrip("/")
            if wanted(name):
                tf.io.gfile.copy(f"{source}/{name}", os.path.join(tmp, name), overwrite=True)
        yield tmp
