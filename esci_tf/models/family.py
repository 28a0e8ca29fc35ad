"""What a backbone family is: the one record every other module reads (esci_tf.models.registry).

A family lives in its own folder, esci_tf/models/<name>/: `entry.py` (its BackboneEntry),
`tokenizer.py` (how to build its tokenizer from a Hugging Face directory), `convert.py` (its
Hugging Face converter, shaped like keras-hub's: `convert_backbone_config(hf_config)` and
`convert_weights(backbone, loader, hf_config)`), and, where keras-hub lacks them, its backbone
and tokenizer classes. Classes and converters are named as "module:attribute" strings and
imported only when used, so an entry never loads a module it does not need.

>>> layout = PairLayout(start=0, separators=(2, 2), end=2, pad=1)
>>> layout.separator_token_id, layout.num_added_tokens
(2, 4)
"""

import dataclasses
import importlib
import sys
from typing import Callable, Optional


def load_attribute(spec: str):
    """The object a "module:attribute" string names (the module is imported if needed)."""
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute)


def is_loaded(spec: str) -> bool:
    """Whether the module of a "module:attribute" string is imported already."""
    return spec.partition(":")[0] in sys.modules


@dataclasses.dataclass(frozen=True)
class PairLayout:
    """How a (query, product) pair is packed: start A separators B end, padded with pad.

    single_segment: every token gets segment id 0 (the family has one token type).
    """

    start: int
    separators: tuple
    end: int
    pad: int
    single_segment: bool = False

    @property
    def separator_token_id(self) -> int:
        """The id that ends the query (the first separator)."""
        return self.separators[0]

    @property
    def num_added_tokens(self) -> int:
        return 2 + len(self.separators)


def cls_sep_layout(tokenizer) -> PairLayout:
    """[CLS] A [SEP] B [SEP], with the tokenizer's own ids (BERT, DeBERTa-v3, RemBERT)."""
    return PairLayout(start=tokenizer.cls_token_id, separators=(tokenizer.sep_token_id,),
                      end=tokenizer.sep_token_id, pad=tokenizer.pad_token_id)


def token_embedding(backbone):
    return backbone.token_embedding


def transformer_layer_outputs(backbone):
    """Symbolic output of each transformer layer, first to last."""
    return [layer.output for layer in backbone.transformer_layers]


def no_pooler(backbone):
    return None


def pooled_dense(backbone):
    """The BERT-style pretrained [CLS] pooler (Dense hidden -> hidden, tanh)."""
    return backbone.get_layer("pooled_dense")


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """What the models and preprocessing code need to know about one backbone family."""

    name: str
    # "module:Class" built from a config (random init, Hugging Face conversion).
    backbone: str
    # "module:Class" of the keras-hub class for `from_preset` and isinstance checks.
    preset_backbone: str
    # "module:Class" of the tokenizer, and "module:function" building it from an HF directory.
    tokenizer: str
    hf_tokenizer: str
    # The vocabulary file of a Hugging Face directory (vocab.txt, a SentencePiece model).
    hf_vocab_file: str
    # "module" of the Hugging Face converter (convert_backbone_config, convert_weights).
    converter: str
    uses_segment_ids: bool
    hf_model_types: tuple
    # Prefix of the encoder's weights in checkpoints saved with a head ("bert.").
    hf_prefix: str
    # Checkpoint weights the backbone does not use (heads, buffers): skipped and logged.
    ignored_prefixes: tuple = ()
    ignored_keys: tuple = ()
    # "module:Class" whose from_preset loads keras-hub tokenizer preset names; None: no presets.
    preset_tokenizer: Optional[str] = None
    # "module:function" returning the embedded demo tokenizer; None: none is shipped.
    demo_tokenizer: Optional[str] = None
    pair_layout: Callable = cls_sep_layout
    # Layer holding the token embedding table (has `.embeddings`).
    token_embedding_layer: Callable = token_embedding
    # Symbolic outputs [B, L, D] of each transformer layer, first to last.
    layer_outputs: Callable = transformer_layer_outputs
    # The backbone's pretrained [CLS] pooler (Dense hidden->hidden, tanh), or None.
    pooler_layer: Callable = no_pooler

    @property
    def backbone_class(self):
        return load_attribute(self.backbone)

    @property
    def preset_class(self):
        return load_attribute(self.preset_backbone)

    @property
    def tokenizer_class(self):
        return load_attribute(self.tokenizer)

    @property
    def convert(self):
        """The converter module."""
        return importlib.import_module(self.converter)

    def load_hf_tokenizer(self, directory: str):
        """The tokenizer of a local Hugging Face directory."""
        return load_attribute(self.hf_tokenizer)(directory)

    def is_instance(self, backbone) -> bool:
        """Whether `backbone` is of this family (never imports the family's module to say no)."""
        return is_loaded(self.preset_backbone) and isinstance(backbone, self.preset_class)

    def word_embeddings(self, backbone):
        """The token embedding keras.Variable [vocabulary, hidden]."""
        return self.token_embedding_layer(backbone).embeddings
