"""PairPreprocessor: (query, product text) strings -> packed token ids, in TF ops only.

Special tokens (esci_tf.special_tokens.ALL_SPECIAL_TOKENS) are split out of the text with
tensorflow-text's regex_split before the backbone tokenizer sees it, and get the ids
`special_token_id(token, tokenizer.vocabulary_size())`. The pair is packed with keras-hub's
MultiSegmentPacker ("waterfall" truncation, so the query stays whole unless it alone is too
long) in the layout of the backbone's family (esci_tf.models.registry: start, separator, end and
pad ids read from the tokenizer). It is the one preprocessing definition shared by TFRecord
building, prediction and serving.
"""

import base64
import hashlib
import json
import re

import keras
import keras_hub
import tensorflow as tf
import tensorflow_text as tf_text

from esci_tf.models import registry
from esci_tf.preprocessing.sentencepiece_resource import keep_model_resource
from esci_tf.special_tokens import ALL_SPECIAL_TOKENS, special_token_id

# Longest first, so that no special token can shadow a longer one that starts the same way.
SPECIAL_TOKENS_PATTERN = "|".join(re.escape(t) for t in sorted(ALL_SPECIAL_TOKENS, key=len, reverse=True))


def _serialize_tokenizer(tokenizer) -> dict:
    """The keras serialisation of a keras-hub tokenizer, with its vocabulary inlined.

    keras-hub keeps vocabularies out of get_config (they are preset assets); inlining them
    (SentencePiece protos base64-encoded, as keras-hub's set_proto accepts) makes the config
    self-contained.
    """
    config = keras.saving.serialize_keras_object(tokenizer)
    if getattr(tokenizer, "proto", None) is not None:
        config["config"]["proto"] = base64.b64encode(tokenizer.proto).decode("ascii")
    elif getattr(tokenizer, "vocabulary", None) is not None:
        config["config"]["vocabulary"] = list(tokenizer.vocabulary)
    return config


@keras.saving.register_keras_serializable(package="esci_tf")
class PairPreprocessor(keras.layers.Layer):
    """Tokenizes and packs (queries, product_texts) string tensors [B] into int32 [B, max_length]
    "token_ids", "segment_ids" and "padding_mask".

    segment_ids are 0 for the query part and 1 for the product part, except for families with
    a single token type (xlm_roberta: all 0, as Hugging Face gives). `separator_token_id` is
    the id that ends the query (what CrossEncoder's cross attention looks for).
    """

    def __init__(self, tokenizer, backbone, max_length=128, **kwargs):
        super().__init__(**kwargs)
        entry = registry.get_entry(backbone)
        if max_length < 5:
            raise ValueError(f"max_length must be at least 5 (room for the separators), got {max_length}")
        if isinstance(tokenizer, dict):
            entry.tokenizer_class  # imports (registers) the family's own tokenizer class
            tokenizer = keras.saving.deserialize_keras_object(tokenizer)
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.max_length = int(max_length)
        self.base_vocabulary_size = int(tokenizer.vocabulary_size())
        self.layout = entry.pair_layout(tokenizer)
        if None in (self.layout.start, self.layout.end, self.layout.pad, *self.layout.separators):
            raise ValueError(f"{type(tokenizer).__name__} lacks the start/separator/end/pad ids that "
                             f"{backbone} needs")
        self.pad_id = int(self.layout.pad)
        self.num_added_tokens = self.layout.num_added_tokens
        separators = [int(i) for i in self.layout.separators]
        self.packer = keras_hub.layers.MultiSegmentPacker(
            sequence_length=self.max_length, start_value=int(self.layout.start),
            end_value=int(self.layout.end), sep_value=separators if len(separators) > 1 else separators[0],
            pad_value=self.pad_id, truncate="waterfall")
        self._special_strings = tf.constant(ALL_SPECIAL_TOKENS)
        self._special_ids = tf.constant(
            [special_token_id(t, self.base_vocabulary_size) for t in ALL_SPECIAL_TOKENS], tf.int32)
        # Keras must pass strings through untouched and accept Python lists.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self._fingerprint = None  # fingerprint(), computed once
        self.built = True

    @property
    def separator_token_id(self) -> int:
        """The tokenizer's id of the token that ends the query ([SEP], </s>)."""
        return int(self.layout.separator_token_id)

    @property
    def vocabulary_size(self) -> int:
        """Base vocabulary plus the special tokens: the embedding rows a model needs."""
        return self.base_vocabulary_size + len(ALL_SPECIAL_TOKENS)

    def tokenize(self, texts):
        """Ragged int32 [B, None] ids of string tensor [B], special tokens kept atomic."""
        texts = _as_string_vector(texts, "texts")
        if tf.executing_eagerly():
            return self._traced("tokenize")(texts)
        return self._tokenize(texts)

    def _tokenize(self, texts):
        pieces = tf_text.regex_split(
            texts, delim_regex_pattern=SPECIAL_TOKENS_PATTERN,
            keep_delim_regex_pattern=SPECIAL_TOKENS_PATTERN)
        flat = pieces.flat_values
        matches = tf.equal(flat[:, None], self._special_strings[None, :])
        is_special = tf.reduce_any(matches, axis=1)
        special_ids = tf.gather(self._special_ids, tf.argmax(tf.cast(matches, tf.int32), axis=1))
        # Special pieces are tokenized as "" (no ids) and contribute their one id instead.
        words = tf.where(is_special, tf.constant(""), flat)
        word_ids = tf.cast(self.tokenizer(words), tf.int32)
        special_rows = tf.ragged.boolean_mask(special_ids[:, None], is_special[:, None])
        piece_ids = tf.concat([word_ids, special_rows], axis=1)
        return pieces.with_flat_values(piece_ids).merge_dims(1, 2)

    def _encode(self, queries, product_texts):
        # One tokenizer call for both sides keeps the traced graph (and its build time) small.
        batch_size = tf.shape(queries)[0]
        tf.debugging.assert_equal(batch_size, tf.shape(product_texts)[0],
                                  message="PairPreprocessor: as many queries as product texts")
        ids = self._tokenize(tf.concat([queries, product_texts], axis=0))
        query_ids, product_ids = ids[:batch_size], ids[batch_size:]
        token_ids, segment_ids = self.packer((query_ids, product_ids))
        token_ids = tf.cast(token_ids, tf.int32)
        segment_ids = tf.cast(segment_ids, tf.int32)
        if self.layout.single_segment:
            segment_ids = tf.zeros_like(segment_ids)
        total = tf.cast(query_ids.row_lengths() + product_ids.row_lengths() + self.num_added_tokens, tf.int32)
        padding_mask = tf.sequence_mask(tf.minimum(total, self.max_length), self.max_length, dtype=tf.int32)
        static = [None, self.max_length]
        features = {
            "token_ids": tf.ensure_shape(token_ids, static),
            "segment_ids": tf.ensure_shape(segment_ids, static),
            "padding_mask": tf.ensure_shape(padding_mask, static),
        }
        return features, tf.maximum(total - self.max_length, 0)

    def encode_with_overflow(self, queries, product_texts):
        """(features dict, int32 [B] number of tokens cut off each pair by truncation)."""
        queries = _as_string_vector(queries, "queries")
        product_texts = _as_string_vector(product_texts, "product_texts")
        if tf.executing_eagerly():
            # keras-hub tokenizers take their TF path only inside a traced function.
            return self._traced("encode")(queries, product_texts)
        return self._encode(queries, product_texts)

    def encode_in_batches(self, queries, product_texts, batch_size: int = 1024, progress=None) -> tuple:
        """(features, tokens_cut) as numpy: int32 [N, max_length] per model input and [N], from
        Python sequences of formatted query and product strings (esci_tf.preprocessing.encode)."""
        from esci_tf.preprocessing.encode import encode_in_batches

        return encode_in_batches(self, queries, product_texts, batch_size, progress)

    def fingerprint(self) -> str:
        """SHA-256 of the config without layer names (Keras numbers those per instance): equal
        fingerprints tokenize and pack alike (the data caches and the traced graphs key on it)."""
        if self._fingerprint is None:
            config = json.dumps(_without_names(self.get_config()), sort_keys=True, default=str)
            self._fingerprint = hashlib.sha256(config.encode()).hexdigest()
        return self._fingerprint

    def _traced(self, name: str):
        """The traced graph of _encode or _tokenize, shared by every instance with this
        fingerprint in the process: tracing and the first run's graph optimisation cost seconds,
        and the recipe and the tests make one preprocessor per model. The graph captures its
        first owner's tokenizer model, kept alive across seeds by keep_model_resource."""
        key = (name, self.fingerprint())
        if key not in _TRACED_GRAPHS:
            keep_model_resource(self.tokenizer)
            spec = tf.TensorSpec([None], tf.string)
            function, signature = (self._encode, [spec, spec]) if name == "encode" else (self._tokenize, [spec])
            _TRACED_GRAPHS[key] = tf.function(function, input_signature=signature, autograph=False)
        return _TRACED_GRAPHS[key]

    def call(self, queries, product_texts=None):
        if product_texts is None:
            if not isinstance(queries, (tuple, list)) or len(queries) != 2:
                raise ValueError("PairPreprocessor takes (queries, product_texts)")
            queries, product_texts = queries
        return self.encode_with_overflow(queries, product_texts)[0]

    def compute_output_spec(self, queries, product_texts=None):
        spec = keras.KerasTensor((None, self.max_length), dtype="int32")
        return {"token_ids": spec, "segment_ids": spec, "padding_mask": spec}

    def get_config(self):
        config = super().get_config()
        config.update(tokenizer=_serialize_tokenizer(self.tokenizer), backbone=self.backbone,
                      max_length=self.max_length)
        return config


# (graph name, PairPreprocessor fingerprint) -> traced function; a few tokenizers per process.
_TRACED_GRAPHS = {}


def _without_names(value):
    """A layer config without its "name"s."""
    if isinstance(value, dict):
        return {key: _without_names(item) for key, item in value.items() if key != "name"}
    if isinstance(value, (list, tuple)):
        return [_without_names(item) for item in value]
    return value


def _as_string_vector(values, name):
    values = tf.convert_to_tensor(values, tf.string) if not isinstance(values, tf.Tensor) else values
    if values.dtype != tf.string:
        raise ValueError(f"{name} must be strings, got {values.dtype.name}")
    if values.shape.rank == 2 and values.shape[-1] == 1:
        values = tf.squeeze(values, -1)
    if values.shape.rank != 1:
        raise ValueError(f"{name} must be a vector [B] of strings, got shape {values.shape}")
    return values
