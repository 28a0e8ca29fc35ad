"""The one table of backbone families, and the lookups every other module goes through.

Each family's entry (esci_tf.models.family.BackboneEntry) is written in its own folder
(esci_tf/models/<name>/entry.py); an entry names its classes and converter as strings, so
RemBERT's backbone module, for one, is imported only when a RemBERT model is built or loaded.

Example:
>>> from esci_tf.models import registry
>>> registry.names()
('bert', 'xlm_roberta', 'deberta_v3', 'rembert')
>>> entry = registry.get_entry("xlm_roberta")
>>> entry.uses_segment_ids, entry.hf_model_types, entry.hf_prefix
(False, ('xlm-roberta',), 'roberta.')
"""

import importlib

from esci_tf.choices import BACKBONE_NAMES
from esci_tf.models.family import BackboneEntry

# esci_tf.choices names the families (the flags need no TensorFlow); each one's entry is its folder's entry.py.
BACKBONES = {name: importlib.import_module(f"esci_tf.models.{name}.entry").ENTRY for name in BACKBONE_NAMES}

__all__ = ["BACKBONES", "BackboneEntry", "entry_for_backbone", "entry_for_model_type",
           "get_entry", "names"]


def names() -> tuple:
    """The family names, in table order."""
    return tuple(BACKBONES)


def get_entry(name: str) -> BackboneEntry:
    """The registry entry of a backbone name; ValueError naming the choices if unknown."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def entry_for_model_type(model_type: str) -> BackboneEntry:
    """The entry that loads a Hugging Face `model_type` (config.json), or ValueError."""
    for entry in BACKBONES.values():
        if model_type in entry.hf_model_types:
            return entry
    known = sorted(t for e in BACKBONES.values() for t in e.hf_model_types)
    raise ValueError(f"unsupported Hugging Face model_type {model_type!r}; supported: {known}")


def entry_for_backbone(backbone) -> BackboneEntry:
    """The entry whose class the given backbone instance is (first match in table order)."""
    for entry in BACKBONES.values():
        if entry.is_instance(backbone):
            return entry
    raise ValueError(f"no registry entry for backbone class {type(backbone).__name__}")
