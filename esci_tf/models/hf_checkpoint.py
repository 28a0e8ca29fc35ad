"""Reading Hugging Face checkpoints (config.json + safetensors) and porting them onto Keras.

`read_hf_checkpoint` returns the config and numpy tensors (model prefix stripped, local or gs://,
sharded or not); `port_weights` assigns a declarative table of HF key -> Keras variable after
checking all of it: every missing, unexpected or mis-shaped key is named in one DataError.
Weights are read with safetensors' numpy API; torch is not needed.
"""

import json
import math
import os
import tempfile

import numpy as np
import safetensors.numpy
import safetensors.tensorflow
import tensorflow as tf
from absl import logging
from keras import ops

from esci_tf.data.errors import DataError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"

# Layouts of a port-table entry: how the HF tensor maps onto the Keras variable.
COPY = "copy"  # same shape
BIAS = "bias"  # HF [n] -> any Keras shape with n elements (e.g. [heads, head_dim])
LINEAR = "linear"  # HF torch Linear [out, in] -> Keras kernel [in..., out...] (1 input axis)
LINEAR_2_IN = "linear_2_in"  # same, Keras kernel with 2 input axes ([heads, head_dim, out])

def hf_file_path(directory, name):
    """`name` inside a local or gs:// checkpoint directory."""
    if "://" in directory:
        return directory.rstrip("/") + "/" + name
    return os.path.join(directory, name)


def read_json(path):
    """A JSON file (local or gs://); DataError naming the file when it is not valid JSON."""
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON: {e}", path=path) from e


def _read_local_safetensors(path):
    try:
        return safetensors.numpy.load_file(path)
    except TypeError:
        # numpy has no bfloat16: read such files through TensorFlow and widen to float32.
        tensors = safetensors.tensorflow.load_file(path)
        return {k: v.numpy().astype(np.float32) for k, v in tensors.items()}


def _read_safetensors(path):
    """All tensors of one .safetensors file (local path or gs://...) as numpy arrays."""
    if "://" not in path:
        return _read_local_safetensors(path)
    with tempfile.TemporaryDirectory() as local_dir:
        local_path = os.path.join(local_dir, "weights.safetensors")
        tf.io.gfile.copy(path, local_path)
        return _read_local_safetensors(local_path)


def _canonical_key(key):
    """Old checkpoints name layer-norm parameters gamma/beta; transformers now uses weight/bias."""
    if key.endswith("LayerNorm.gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith("LayerNorm.beta"):
        return key[: -len("beta")] + "bias"
    return key


def read_hf_checkpoint(hf_dir, prefix):
    """Reads config.json and the safetensors weights of a Hugging Face model directory.

    Returns (config dict, {key: np.ndarray}, weights path). Keys lose `prefix` (e.g. "rembert.")
    when they carry it, so checkpoints saved from the base model or from a model with a head
    give the same keys; head weights stay under their own names (e.g. "cls.predictions.bias").
    Sharded checkpoints (model.safetensors.index.json) are read in full.
    """
    config_path = hf_file_path(hf_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(config_path):
        raise DataError(f"no {CONFIG_FILE} in the Hugging Face directory {hf_dir}",
                        path=config_path)
    config = read_json(config_path)

    weights_path = hf_file_path(hf_dir, WEIGHTS_FILE)
    index_path = hf_file_path(hf_dir, WEIGHTS_INDEX_FILE)
    if tf.io.gfile.exists(weights_path):
        raw = _read_safetensors(weights_path)
    elif tf.io.gfile.exists(index_path):
        with tf.io.gfile.GFile(index_path) as f:
            shard_names = sorted(set(json.load(f)["weight_map"].values()))
        raw = {}
        for name in shard_names:
            raw.update(_read_safetensors(hf_file_path(hf_dir, name)))
        weights_path = index_path
    else:
        raise DataError(
            f"no {WEIGHTS_FILE} or {WEIGHTS_INDEX_FILE} in {hf_dir} (only safetensors checkpoints "
            "are supported; convert .bin files with transformers' save_pretrained)",
            path=hf_dir,
        )

    tensors = {}
    for key, value in raw.items():
        name = _canonical_key(key[len(prefix):] if key.startswith(prefix) else key)
        if name in tensors:
            raise DataError(f"weight {name!r} appears both with and without the prefix {prefix!r}",
                            path=weights_path)
        tensors[name] = value
    return config, tensors, weights_path


def _expected_hf_shape(layout, keras_shape):
    """The HF tensor shape that `layout` maps onto a Keras variable of `keras_shape`."""
    if layout == COPY:
        return tuple(keras_shape)
    if layout == BIAS:
        return (math.prod(keras_shape),)
    if layout in (LINEAR, LINEAR_2_IN):
        num_in = 1 if layout == LINEAR else 2
        return (math.prod(keras_shape[num_in:]), math.prod(keras_shape[:num_in]))
    raise ValueError(f"unknown port layout {layout!r}")


def _to_keras(layout, hf_tensor, keras_shape):
    if layout in (LINEAR, LINEAR_2_IN):
        hf_tensor = np.transpose(hf_tensor)
    return np.reshape(hf_tensor, keras_shape)


def port_weights(tensors, port_table, weights_path, model_name, ignored_prefixes=(),
                 ignored_keys=()):
    """Assigns `tensors` to Keras variables as `port_table` says, after checking all of them.

    port_table: list of (hf_key, keras_variable, layout). Keys starting with one of
    `ignored_prefixes` (head weights) or equal to one of `ignored_keys` are skipped and logged.
    Raises DataError naming every missing key, every unexpected key and every shape mismatch.
    """
    wanted = {}
    for hf_key, variable, layout in port_table:
        if hf_key in wanted:
            raise ValueError(f"port table maps {hf_key!r} twice")
        wanted[hf_key] = (variable, layout)
    missing = sorted(k for k in wanted if k not in tensors)
    ignored = sorted(k for k in tensors if k not in wanted and
                     (k.startswith(tuple(ignored_prefixes)) or k in ignored_keys))
    unexpected = sorted(k for k in tensors if k not in wanted and k not in ignored)
    mismatched = []
    for hf_key, (variable, layout) in wanted.items():
        if hf_key not in tensors:
            continue
        expected = _expected_hf_shape(layout, tuple(variable.shape))
        if tuple(tensors[hf_key].shape) != expected:
            mismatched.append(
                f"{hf_key}: checkpoint shape {tuple(tensors[hf_key].shape)}, expected {expected}"
            )
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched)}")
    if problems:
        raise DataError(f"checkpoint does not match {model_name}: " + " | ".join(problems),
                        path=weights_path)
    if ignored:
        logging.info("%s: ignoring %d weights the backbone does not use: %s", weights_path,
                     len(ignored), ", ".join(ignored))
    for hf_key, (variable, layout) in wanted.items():
        value = _to_keras(layout, tensors[hf_key], tuple(variable.shape))
        variable.assign(ops.convert_to_tensor(value.astype(np.float32), dtype=variable.dtype))


def encoder_shape(hf_config):
    """The keras-hub encoder size arguments every Hugging Face encoder config carries."""
    return dict(
        vocabulary_size=hf_config["vocab_size"],
        num_layers=hf_config["num_hidden_layers"],
        num_heads=hf_config["num_attention_heads"],
        hidden_dim=hf_config["hidden_size"],
        intermediate_dim=hf_config["intermediate_size"],
    )
