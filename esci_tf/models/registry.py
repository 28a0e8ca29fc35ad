"""Backbones by name: the keras-hub class of each and how to reach its parts.

Each `BackboneEntry` knows the backbone class, whether the backbone takes `segment_ids`,
which Hugging Face `model_type` values it loads, the id of its separator token (used to find
the query segment when there are no segment ids), and how to reach its token embedding table,
its per-layer outputs and its pretrained pooler (if it has one).

Example:
>>> from esci_tf.models import registry
>>> entry = registry.get_entry("xlm_roberta")
>>> entry.uses_segment_ids, entry.hf_model_types
(False, ('xlm-roberta',))
"""

import dataclasses
import importlib
from typing import Callable, Optional

import keras
import keras_hub


@keras.saving.register_keras_serializable(package="esci_tf")
class HFBertBackbone(keras_hub.models.BertBackbone):
    """keras-hub `BertBackbone` with a selectable feed-forward activation.

    keras-hub's BERT always uses the tanh approximation of GELU; Hugging Face BERT checkpoints
    (`hidden_act: "gelu"`, e.g. all-MiniLM-L6-v2) use the exact erf GELU, and the difference
    (~3e-3 on hidden states) breaks parity. `hidden_activation="gelu"` selects the exact one.

    >>> import numpy as np
    >>> bb = HFBertBackbone(vocabulary_size=50, num_layers=1, num_heads=2, hidden_dim=8,
    ...                     intermediate_dim=16, max_sequence_length=16,
    ...                     hidden_activation="gelu")
    >>> x = {"token_ids": np.ones((1, 4), "int32"), "segment_ids": np.zeros((1, 4), "int32"),
    ...      "padding_mask": np.ones((1, 4), "int32")}
    >>> bb(x)["sequence_output"].shape
    TensorShape([1, 4, 8])
    """

    def __init__(self, *args, hidden_activation="gelu_approximate", **kwargs):
        super().__init__(*args, **kwargs)
        if hidden_activation != "gelu_approximate":
            activation = keras.activations.get(hidden_activation)
            for layer in self.transformer_layers:
                # The layers are already built by the functional constructor: swap the
                # activation on the built intermediate Dense and in the layer's config.
                layer.activation = activation
                layer._feedforward_intermediate_dense.activation = activation
        self.hidden_activation = hidden_activation

    def get_config(self):
        config = super().get_config()
        config["hidden_activation"] = self.hidden_activation
        return config


def _token_embedding(backbone):
    return backbone.token_embedding


def _transformer_layer_outputs(backbone):
    """Symbolic output of each transformer layer, first to last."""
    return [layer.output for layer in backbone.transformer_layers]


def _no_pooler(backbone):
    return None


def _bert_pooler(backbone):
    return backbone.get_layer("pooled_dense")


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """What the models code needs to know about one backbone family."""

    name: str
    # Class built from a config (random init, Hugging Face conversion).
    load_class: Callable[[], type]
    # keras-hub class for `from_preset` and isinstance checks (a base of load_class).
    preset_load_class: Callable[[], type]
    uses_segment_ids: bool
    hf_model_types: tuple
    separator_token_id: Optional[int]
    # Layer holding the token embedding table (has `.embeddings`).
    token_embedding_layer: Callable = _token_embedding
    # Symbolic outputs [B, L, D] of each transformer layer, first to last.
    layer_outputs: Callable = _transformer_layer_outputs
    # The backbone's pretrained [CLS] pooler (Dense hidden->hidden, tanh), or None.
    pooler_layer: Callable = _no_pooler

    @property
    def backbone_class(self):
        return self.load_class()

    @property
    def preset_class(self):
        return self.preset_load_class()

    def word_embeddings(self, backbone):
        """The token embedding keras.Variable [vocabulary, hidden]."""
        return self.token_embedding_layer(backbone).embeddings


def _rembert_class():
    # Written in esci_tf/models/rembert_backbone.py; imported only when asked for.
    module = importlib.import_module("esci_tf.models.rembert_backbone")
    return module.RemBertBackbone


BACKBONES = {
    "bert": BackboneEntry(
        name="bert",
        load_class=lambda: HFBertBackbone,
        preset_load_class=lambda: keras_hub.models.BertBackbone,
        uses_segment_ids=True,
        hf_model_types=("bert",),
        separator_token_id=102,
        pooler_layer=_bert_pooler,
    ),
    "xlm_roberta": BackboneEntry(
        name="xlm_roberta",
        load_class=lambda: keras_hub.models.XLMRobertaBackbone,
        preset_load_class=lambda: keras_hub.models.XLMRobertaBackbone,
        uses_segment_ids=False,
        hf_model_types=("xlm-roberta",),
        separator_token_id=2,  # </s>
    ),
    "deberta_v3": BackboneEntry(
        name="deberta_v3",
        load_class=lambda: keras_hub.models.DebertaV3Backbone,
        preset_load_class=lambda: keras_hub.models.DebertaV3Backbone,
        uses_segment_ids=False,
        hf_model_types=("deberta-v2",),
        separator_token_id=2,  # [SEP]
    ),
    "rembert": BackboneEntry(
        name="rembert",
        load_class=_rembert_class,
        preset_load_class=_rembert_class,
        uses_segment_ids=True,
        hf_model_types=("rembert",),
        separator_token_id=313,  # [SEP]
        pooler_layer=_bert_pooler,
    ),
}


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
    """The entry whose class the given backbone instance is (most specific match first)."""
    for entry in BACKBONES.values():
        if entry.name == "rembert" and type(backbone).__name__ != "RemBertBackbone":
            continue  # do not import the RemBERT module just to rule it out
        if isinstance(backbone, entry.preset_class):
            return entry
    raise ValueError(f"no registry entry for backbone class {type(backbone).__name__}")
