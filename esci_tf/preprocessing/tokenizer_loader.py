"""Build a backbone family's tokenizer from a Hugging Face dir, a keras-hub preset (dir or
name), or, where the family ships one (xlm_roberta), the embedded demo vocabulary. What each
family reads lives in its folder (esci_tf/models/<family>/tokenizer.py); this is the dispatch."""

import os
import shutil
import tempfile

import tensorflow as tf
from keras_hub.src.utils.preset_utils import KerasPresetLoader

from esci_tf.models import registry
from esci_tf.models.family import load_attribute
from esci_tf.models.hf_files import read_optional_json

BACKBONES = registry.names()

# Tokenizer settings a Hugging Face directory may hold next to the vocabulary file.
HF_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "config.json")


def _copy_remote_dir(path: str, vocab_file: str) -> str:
    """Copy the tokenizer files of a gs:// (or other tf.io.gfile) directory to a local temp dir."""
    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"tokenizer path {path} is not a directory")
    local = tempfile.mkdtemp(prefix="esci_tf_tokenizer_")
    wanted = {vocab_file, "metadata.json", *HF_CONFIG_FILES}
    for name in tf.io.gfile.listdir(path):
        name = name.rstrip("/")
        if name in wanted:
            tf.io.gfile.copy(f"{path.rstrip('/')}/{name}", os.path.join(local, name), overwrite=True)
    remote_assets = f"{path.rstrip('/')}/assets"
    if tf.io.gfile.isdir(remote_assets):  # a keras-hub preset keeps its vocab under assets/
        for root, _, files in tf.io.gfile.walk(remote_assets):
            rel = os.path.relpath(root, path.rstrip("/"))
            os.makedirs(os.path.join(local, rel), exist_ok=True)
            for name in files:
                tf.io.gfile.copy(f"{root}/{name}", os.path.join(local, rel, name), overwrite=True)
    return local


def _is_keras_hub_preset(path: str) -> bool:
    if os.path.exists(os.path.join(path, "metadata.json")):
        return True
    return "class_name" in read_optional_json(os.path.join(path, "tokenizer.json"))


def _load_keras_hub_preset_dir(path: str):
    """The tokenizer of a keras-hub preset directory (tokenizer.json + assets), through
    keras-hub's KerasPresetLoader (a tokenizer-only preset has no config.json)."""
    if "class_name" not in read_optional_json(os.path.join(path, "tokenizer.json")):
        raise FileNotFoundError(f"{path}: keras-hub preset without a tokenizer.json tokenizer config")
    return KerasPresetLoader(path, config=None).load_tokenizer(cls=None)


def load_tokenizer(backbone: str, path: str | None = None):
    """The tokenizer for `backbone` (a registry name: "bert", "xlm_roberta", ...).

    path: a Hugging Face directory (local or gs://), a keras-hub preset directory, a keras-hub
    preset name, or None for the family's embedded demo vocab (xlm_roberta only).
    """
    entry = registry.get_entry(backbone)
    if path is None:
        if entry.demo_tokenizer is None:
            shipped = [e.name for e in registry.BACKBONES.values() if e.demo_tokenizer]
            raise ValueError(f"backbone {backbone!r} needs a tokenizer path; only "
                             f"{', '.join(shipped)} has an embedded demo vocabulary")
        return load_attribute(entry.demo_tokenizer)()
    local = _copy_remote_dir(path, entry.hf_vocab_file) if "://" in path else path
    try:
        if os.path.isdir(local):
            entry.tokenizer_class  # imports (registers) the family's own tokenizer class
            if _is_keras_hub_preset(local):
                return _load_keras_hub_preset_dir(local)
            return entry.load_hf_tokenizer(local)
    finally:
        if local != path:
            shutil.rmtree(local, ignore_errors=True)
    if os.sep in path or path.startswith("."):
        raise FileNotFoundError(f"tokenizer path {path} does not exist")
    if entry.preset_tokenizer is None:
        raise ValueError(f"keras-hub has no {backbone} presets; pass a Hugging Face directory "
                         f"holding {entry.hf_vocab_file} (got {path!r})")
    return load_attribute(entry.preset_tokenizer).from_preset(path)
