"""The one way Hugging Face weights reach a Keras backbone: a checked safetensors loader.

Every family's `convert_weights(backbone, loader, hf_config)` (keras-hub's converters for BERT
and XLM-R, ours for DeBERTa-v3 and RemBERT) calls `loader.port_weight(variable, hf_key,
hook_fn)`. The loader reads local single-file or sharded safetensors (bfloat16 widened to
float32), finds keys with or without the family's model prefix ("bert.") and under legacy
LayerNorm gamma/beta names, collects every missing key and shape mismatch instead of stopping
at the first, and `check_complete` raises one DataError naming them, the unexpected keys and
the file. Config converters raise ConfigError; the caller adds the config file's path.
"""

import os

import numpy as np
from absl import logging
from keras_hub.src.utils.preset_utils import get_file
from keras_hub.src.utils.transformers.safetensor_utils import SafetensorLoader
from safetensors import safe_open

from esci_tf.errors import DataError
from esci_tf.files import join

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"


class ConfigError(ValueError):
    """A Hugging Face config the backbone cannot represent."""


class MissingWeight(KeyError):
    """A weight a converter asked for is not in the checkpoint."""


def require_setting(hf_config, model_type, key, allowed):
    """ConfigError unless `hf_config[key]` (default: the first allowed value) is allowed."""
    if hf_config.get(key, allowed[0]) not in allowed:
        raise ConfigError(f"{key}={hf_config[key]!r} is not supported for model_type "
                          f"{model_type!r} (supported: {allowed})")


def encoder_shape(hf_config):
    """The keras-hub encoder size arguments every Hugging Face encoder config carries."""
    return dict(
        vocabulary_size=hf_config["vocab_size"],
        num_layers=hf_config["num_hidden_layers"],
        num_heads=hf_config["num_attention_heads"],
        hidden_dim=hf_config["hidden_size"],
        intermediate_dim=hf_config["intermediate_size"],
    )


def canonical_key(key):
    """Old checkpoints name layer-norm parameters gamma/beta; transformers now uses weight/bias.

    >>> canonical_key("bert.embeddings.LayerNorm.gamma")
    'bert.embeddings.LayerNorm.weight'
    """
    for old, new in (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias")):
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def _expected_shape(hook_fn, keras_shape):
    """The checkpoint shape `hook_fn` maps onto `keras_shape`, None when the hook does not say."""
    if hook_fn is None:
        return tuple(keras_shape)
    hf_shape = getattr(hook_fn, "hf_shape", None)
    return hf_shape(tuple(keras_shape)) if hf_shape else None


class CheckedSafetensorLoader(SafetensorLoader):
    """keras-hub's SafetensorLoader over a local Hugging Face directory, every key checked.

    local_dir: the directory (a local copy of a remote one); prefix: the family's model prefix,
    stripped where present; display_dir: the directory named in errors (the remote one).
    """

    def __init__(self, local_dir, prefix="", display_dir=None):
        super().__init__(local_dir)
        display_dir = display_dir or local_dir
        sharded = self.safetensor_config is not None
        self.weights_path = join(display_dir, WEIGHTS_INDEX_FILE if sharded else WEIGHTS_FILE)
        self.model_prefix = prefix
        if sharded:
            stored = self.safetensor_config["weight_map"].items()
        else:
            path = os.path.join(local_dir, WEIGHTS_FILE)
            if not os.path.exists(path):
                raise DataError(
                    f"no {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE} in {display_dir} (only safetensors "
                    "checkpoints are supported; convert .bin files with transformers' "
                    "save_pretrained)", path=display_dir)
            with safe_open(path, framework="np") as f:
                stored = [(key, WEIGHTS_FILE) for key in f.keys()]
        # Canonical name (prefix stripped, weight/bias) -> (file name, key in the file).
        self.keys = {}
        for key, file_name in stored:
            name = self.key_name(key)
            if name in self.keys:
                raise DataError(f"{self.keys[name][1]!r} and {key!r} are the same weight {name!r} "
                                f"(model prefix {prefix!r}, LayerNorm gamma/beta names)",
                                path=self.weights_path)
            self.keys[name] = (file_name, key)
        self._files = {}
        self.used, self.missing, self.mismatched = set(), [], []

    def key_name(self, hf_weight_key):
        """The canonical name of a key: model prefix stripped, LayerNorm weight/bias."""
        if self.model_prefix and hf_weight_key.startswith(self.model_prefix):
            hf_weight_key = hf_weight_key[len(self.model_prefix):]
        return canonical_key(hf_weight_key)

    def _file(self, file_name, framework):
        if (file_name, framework) not in self._files:
            path = get_file(self.preset, file_name)
            self._files[file_name, framework] = self.enter_context(safe_open(path, framework=framework))
        return self._files[file_name, framework]

    def get_tensor(self, hf_weight_key):
        """The numpy tensor of a key (bfloat16 widened to float32); MissingWeight if absent."""
        name = self.key_name(hf_weight_key)
        if name not in self.keys:
            raise MissingWeight(name)
        file_name, key = self.keys[name]
        try:
            value = self._file(file_name, "np").get_tensor(key)
        except TypeError:  # numpy has no bfloat16: read through TensorFlow, widen to float32
            value = self._file(file_name, "tf").get_tensor(key).numpy().astype(np.float32)
        self.used.add(name)
        return value

    def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
        """Assign the key's tensor (through `hook_fn(tensor, shape)`) to `keras_variable`, or
        record it as missing or mis-shaped."""
        name = self.key_name(hf_weight_key)
        try:
            hf_tensor = self.get_tensor(hf_weight_key)
        except MissingWeight:
            self.missing.append(name)
            return
        target = tuple(keras_variable.shape)
        expected = _expected_shape(hook_fn, target)
        value = None
        if expected is None or tuple(hf_tensor.shape) == expected:
            try:
                value = hook_fn(hf_tensor, list(target)) if hook_fn else hf_tensor
            except ValueError:
                value = None
        if value is None or tuple(np.shape(value)) != target:
            wanted = expected if expected is not None else f"one that converts to {target}"
            self.mismatched.append(
                f"{name}: checkpoint shape {tuple(hf_tensor.shape)}, expected {wanted}")
            return
        keras_variable.assign(value)

    def check_complete(self, model_name, ignored_prefixes=(), ignored_keys=(), finished=True):
        """DataError naming every missing, mis-shaped and (when the conversion `finished`)
        unexpected key; the ignored ones (heads, buffers) are logged."""
        unread = sorted(set(self.keys) - self.used)
        ignored = [k for k in unread if k.startswith(tuple(ignored_prefixes)) or k in ignored_keys]
        unexpected = [k for k in unread if k not in ignored] if finished else []
        missing = sorted(set(self.missing))
        problems = []
        if missing:
            problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if self.mismatched:
            problems.append(f"shape mismatches ({len(self.mismatched)}): "
                            f"{'; '.join(self.mismatched)}")
        if problems:
            raise DataError(f"checkpoint does not match {model_name}: " + " | ".join(problems),
                            path=self.weights_path)
        if ignored:
            logging.info("%s: ignoring %d weights the backbone does not use: %s",
                         self.weights_path, len(ignored), ", ".join(ignored))
