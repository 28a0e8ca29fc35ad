"""FieldsPreprocessor: raw ESCI string fields -> packed token ids, the model's own preprocessor.

One serializable layer holds the whole text path: cleaning (clean_ops), the paper's template
(template_ops) and tokenization with pair packing (PairPreprocessor). TFRecord building,
trainers.predict, the benchmarks and the exported SavedModel all run this one object, so a pair
is tokenized the same way everywhere.

Inputs are a dict of string tensors [B] keyed by template_ops.RAW_FIELDS ("query",
"product_locale", "product_title", "product_brand", "product_color", "product_bullet_point",
"product_description"); missing fields are empty.

Entity markers (TemplateSettings.entity_markers) are the one step that is not TF ops: the
tagger's rules need lookbehind and lookahead for Latin word boundaries and a longest-match
choice across four matchers, which RE2 (the regex engine of TF's string ops) does not have.
A preprocessor with entity markers tags in Python between cleaning and the template (`format`
eagerly); inside a traced graph (a SavedModel) it raises, naming the setting.

>>> from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
>>> pair = PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", max_length=16)
>>> layer = FieldsPreprocessor(pair)
>>> features = layer({"query": ["<b>Red</b> shoes 🎧"], "product_locale": ["us"],
...                   "product_title": ["Running shoe"]})
>>> sorted(features), features["token_ids"].shape
(['padding_mask', 'segment_ids', 'token_ids'], TensorShape([1, 16]))
"""

import keras
import tensorflow as tf

from esci_tf.data.template import TemplateSettings
from esci_tf.preprocessing import template_ops
from esci_tf.preprocessing.clean_ops import TextCleaner
from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor

RAW_FIELDS = template_ops.RAW_FIELDS


@keras.saving.register_keras_serializable(package="esci_tf")
class FieldsPreprocessor(keras.layers.Layer):
    """Raw fields dict -> {"token_ids", "segment_ids", "padding_mask"} int32 [B, max_length].

    Args:
        pair_preprocessor: the PairPreprocessor (or its config) that tokenizes and packs.
        template: TemplateSettings (or its dict): field style, prompt tokens, entity markers.
    """

    def __init__(self, pair_preprocessor, template=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(pair_preprocessor, dict):
            pair_preprocessor = PairPreprocessor.from_config(pair_preprocessor)
        if template is None:
            template = TemplateSettings()
        elif isinstance(template, dict):
            template = TemplateSettings.from_dict(template)
        template_ops.field_labels(template.field_style)  # fails early on a bad style
        self.pair_preprocessor = pair_preprocessor
        self.template = template
        with tf.init_scope():
            self.cleaner = TextCleaner()
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self._graph_format = None
        self._graph_encode = None
        self.built = True

    @property
    def max_length(self) -> int:
        return self.pair_preprocessor.max_length

    @property
    def vocabulary_size(self) -> int:
        return self.pair_preprocessor.vocabulary_size

    @property
    def separator_token_id(self) -> int:
        return self.pair_preprocessor.separator_token_id

    # -- the text path
    def _clean(self, fields):
        return template_ops.clean_fields(fields, self.cleaner)

    def _assemble(self, cleaned):
        return template_ops.assemble(cleaned, self.template.field_style, self.template.prompt_tokens)

    def _format_graph(self, fields):
        if self.template.entity_markers:
            raise ValueError("entity markers (--entity_markers) are tagged in Python, not in TF ops: this "
                             "preprocessor cannot run inside a graph (see esci_tf.preprocessing.fields_preprocessor)")
        return self._assemble(self._clean(fields))

    def _format_tagged(self, fields):
        """Cleaning and template as TF ops, with the Python entity tagger between them."""
        cleaned = self._traced("_clean_traced", self._clean)(_string_fields(fields))
        tagger = self.template.tagger()
        text = {k: [v.decode("utf-8") for v in t.numpy()] for k, t in cleaned.items()}
        locales = text["locale"]
        tagged = {
            "query": [tagger.tag(q, loc) if q else q for q, loc in zip(text["query"], locales)],
            "description": [tagger.tag(d, loc) if d else d for d, loc in zip(text["description"], locales)],
            "color": [tagger.wrap(c, "COLOR") for c in text["color"]],
            "brand": [tagger.wrap(b, "BRAND") for b in text["brand"]],
            "locale": locales,
        }
        tensors = {k: tf.constant(v, tf.string) if v else tf.zeros([0], tf.string) for k, v in tagged.items()}
        return self._traced("_assemble_traced", self._assemble)(tensors)

    def _traced(self, name, function):
        cached = self.__dict__.get(name)
        if cached is None:
            cached = tf.function(function)
            self.__dict__[name] = cached
        return cached

    def format(self, fields) -> tuple:
        """(query texts, product texts), string tensors [B]: what the tokenizer reads."""
        if self.template.entity_markers and tf.executing_eagerly():
            return self._format_tagged(fields)
        fields = _string_fields(fields)
        if tf.executing_eagerly():
            if self._graph_format is None:
                self._graph_format = tf.function(self._format_graph)
            return self._graph_format(fields)
        return self._format_graph(fields)

    def encode_with_overflow(self, fields):
        """(features dict, int32 [B] number of tokens truncation cut from each pair)."""
        queries, products = self.format(fields)
        return self.pair_preprocessor.encode_with_overflow(queries, products)

    def call(self, fields):
        return self.encode_with_overflow(fields)[0]

    def compute_output_spec(self, fields):
        spec = keras.KerasTensor((None, self.max_length), dtype="int32")
        return {"token_ids": spec, "segment_ids": spec, "padding_mask": spec}

    def get_config(self):
        config = super().get_config()
        config.update(pair_preprocessor=self.pair_preprocessor.get_config(), template=self.template.to_dict())
        return config


def _string_fields(fields) -> dict:
    """The known raw fields of a dict as string tensors [B]; unknown keys are an error."""
    if not isinstance(fields, dict):
        raise ValueError(f"FieldsPreprocessor takes a dict of raw fields {RAW_FIELDS}, got {type(fields).__name__}")
    unknown = sorted(set(fields) - set(RAW_FIELDS) - {"example_id"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}; the raw fields are {', '.join(RAW_FIELDS)}")
    if "query" not in fields or "product_locale" not in fields:
        raise ValueError("the raw fields must include query and product_locale")
    out = {}
    for name in RAW_FIELDS:
        if name in fields:
            value = fields[name]
            value = value if isinstance(value, tf.Tensor) else tf.convert_to_tensor(value, tf.string)
            if value.dtype != tf.string:
                raise ValueError(f"field {name} must be strings, got {value.dtype.name}")
            out[name] = tf.reshape(value, [-1])
    return out
