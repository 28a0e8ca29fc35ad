"""Build the keras-hub tokenizer of a backbone from a Hugging Face dir, a keras-hub preset
(dir or name), or, for xlm_roberta with no path, the embedded demo SentencePiece vocab."""

import json
import os
import shutil
import tempfile

import keras
import keras_hub
import tensorflow as tf

from esci_tf.preprocessing.bert_tokenizer import HFBertTokenizer
from esci_tf.preprocessing.rembert_tokenizer import RemBertTokenizer

BACKBONES = ("bert", "xlm_roberta", "deberta_v3", "rembert")

DEMO_SPM_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "assets", "demo_spm.model")

# The vocabulary file of each backbone in a Hugging Face directory.
HF_VOCAB_FILES = {
    "bert": "vocab.txt",
    "xlm_roberta": "sentencepiece.bpe.model",
    "deberta_v3": "spm.model",
    "rembert": "sentencepiece.model",
}
HF_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "config.json")

KERAS_HUB_CLASSES = {
    "bert": keras_hub.models.BertTokenizer,
    "xlm_roberta": keras_hub.models.XLMRobertaTokenizer,
    "deberta_v3": keras_hub.models.DebertaV3Tokenizer,
}


def _read_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e


def _is_remote(path: str) -> bool:
    return "://" in path


def _copy_remote_dir(path: str) -> str:
    """Copy the tokenizer files of a gs:// (or other tf.io.gfile) directory to a local temp dir."""
    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"tokenizer path {path} is not a directory")
    local = tempfile.mkdtemp(prefix="esci_tf_tokenizer_")
    wanted = set(HF_VOCAB_FILES.values()) | set(HF_CONFIG_FILES) | {"metadata.json"}
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
    config = _read_json(os.path.join(path, "tokenizer.json"))
    return "class_name" in config


def _load_keras_hub_preset_dir(path: str):
    config = _read_json(os.path.join(path, "tokenizer.json"))
    if "class_name" not in config:
        raise FileNotFoundError(f"{path}: keras-hub preset without a tokenizer.json tokenizer config")
    tokenizer = keras.saving.deserialize_keras_object(config)
    tokenizer.load_preset_assets(path)
    return tokenizer


def _token_name(value, default):
    """A token setting from tokenizer_config.json: a string or an AddedToken-style dict."""
    if isinstance(value, dict):
        return value.get("content", default)
    return value if isinstance(value, str) else default


def _load_hf_dir(backbone: str, path: str):
    vocab_path = os.path.join(path, HF_VOCAB_FILES[backbone])
    config = _read_json(os.path.join(path, "tokenizer_config.json"))
    if backbone == "bert":
        lowercase = bool(config.get("do_lower_case", True))
        strip_accents = config.get("strip_accents")
        strip_accents = lowercase if strip_accents is None else bool(strip_accents)
        if os.path.exists(vocab_path):
            with open(vocab_path, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n") for line in f]
        else:
            vocabulary = _vocab_from_tokenizer_json(path, vocab_path)
        return HFBertTokenizer(
            vocabulary=vocabulary, lowercase=lowercase, strip_accents=strip_accents,
            split_on_cjk=bool(config.get("tokenize_chinese_chars", True)))
    if not os.path.exists(vocab_path):
        raise FileNotFoundError(
            f"{path}: no {HF_VOCAB_FILES[backbone]} (the SentencePiece model a {backbone} "
            f"Hugging Face directory must hold)")
    with open(vocab_path, "rb") as f:
        proto = f.read()
    try:
        return _sentencepiece_tokenizer(backbone, proto, path, config)
    except (ValueError, RuntimeError) as e:
        raise ValueError(f"{vocab_path}: cannot build the {backbone} tokenizer: {e}") from e


def _sentencepiece_tokenizer(backbone, proto, path, config):
    if backbone == "xlm_roberta":
        return keras_hub.models.XLMRobertaTokenizer(proto=proto)
    if backbone == "deberta_v3":
        return keras_hub.models.DebertaV3Tokenizer(proto=proto)
    specials = _read_json(os.path.join(path, "special_tokens_map.json"))
    names = {}
    for name, default in (("cls_token", "[CLS]"), ("sep_token", "[SEP]"),
                          ("pad_token", "[PAD]"), ("mask_token", "[MASK]")):
        names[name] = _token_name(config.get(name, specials.get(name)), default)
    return RemBertTokenizer(proto=proto, **names)


def _vocab_from_tokenizer_json(path: str, vocab_path: str) -> list:
    """A WordPiece vocabulary (id order) from a fast-only tokenizer.json."""
    fast = _read_json(os.path.join(path, "tokenizer.json"))
    vocab = fast.get("model", {}).get("vocab")
    if not isinstance(vocab, dict):
        raise FileNotFoundError(f"{path}: no {os.path.basename(vocab_path)} and no WordPiece "
                                "vocab in tokenizer.json")
    return [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]


def load_tokenizer(backbone: str, path: str | None = None):
    """The keras-hub tokenizer for `backbone` ("bert", "xlm_roberta", "deberta_v3", "rembert").

    path: a Hugging Face directory (local or gs://), a keras-hub preset directory, a keras-hub
    preset name, or None for the embedded demo vocab (xlm_roberta only).
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; expected one of {', '.join(BACKBONES)}")
    if path is None:
        if backbone != "xlm_roberta":
            raise ValueError(f"backbone {backbone!r} needs a tokenizer path; only xlm_roberta has "
                             "an embedded demo vocabulary")
        with open(DEMO_SPM_PATH, "rb") as f:
            return keras_hub.models.XLMRobertaTokenizer(proto=f.read())
    local = path
    if _is_remote(path):
        local = _copy_remote_dir(path)
    try:
        if os.path.isdir(local):
            if _is_keras_hub_preset(local):
                return _load_keras_hub_preset_dir(local)
            return _load_hf_dir(backbone, local)
    finally:
        if local != path:
            shutil.rmtree(local, ignore_errors=True)
    if os.sep in path or path.startswith("."):
        raise FileNotFoundError(f"tokenizer path {path} does not exist")
    if backbone not in KERAS_HUB_CLASSES:
        raise ValueError(f"keras-hub has no {backbone} presets; pass a Hugging Face directory "
                         f"holding {HF_VOCAB_FILES[backbone]} (got {path!r})")
    return KERAS_HUB_CLASSES[backbone].from_preset(path)
