"""Text to tokens: cleaning, the template and entity markers (TF ops with their settings and
Python helpers), the pair preprocessing shared by TFRecord building, prediction and serving,
and tokenizer loading through each backbone family's entry (esci_tf.models). Frames are encoded
by one public class, FrameEncoder (esci_tf.preprocessing.frame_encoder). Depends on
esci_tf.models one way: the models import nothing from here (a saved model's preprocessor class
is registered by importing esci_tf.preprocessing.fields_preprocessor before loading it)."""

import importlib

# Loaded on first use, so that the light modules here (cleaning, template, entities) import without
# TensorFlow: the entry points check their settings before importing it (tests/test_cli.py).
_PUBLIC = {"BACKBONES": "tokenizer_loader", "FrameEncoder": "frame_encoder", "PairPreprocessor": "pair_preprocessor",
           "load_tokenizer": "tokenizer_loader"}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"esci_tf.preprocessing.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'esci_tf.preprocessing' has no attribute {name!r}")
