"""FieldsPreprocessor: raw ESCI string fields -> packed token ids, the model's own preprocessor.

One serializable layer holds the whole text path: cleaning (clean_ops), entity markers when the
template has them (entity_ops), the paper's template (template_ops) and tokenization with pair
packing (PairPreprocessor), all of it TF ops. TFRecord building,
trainers.predict, the benchmarks and the exported SavedModel all run this one object, so a pair
is tokenized the same way everywhere.

Inputs are a dict of string tensors [B] keyed by template_ops.RAW_FIELDS ("query",
"product_locale", "product_title", "product_brand", "product_color", "product_bullet_point",
"product_description"); missing fields are empty.

Entity markers (TemplateSettings.entity_markers) run between cleaning and the template; their
gazetteers are part of the template settings (this layer's config), so a model with them
exports raw-fields serving like any other.

>>> from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
>>> pair = PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", max_length=16)
>>> layer = FieldsPreprocessor(pair)
>>> features = layer({"query": ["<b>Red</b> shoes 🎧"], "product_locale": ["us"],
...                   "product_title": ["Running shoe"]})
>>> sorted(features), features["token_ids"].shape
(['padding_mask', 'segment_ids', 'token_ids'], TensorShape([1, 16]))
"""

import keras

from esci_tf.preprocessing.template import TemplateSettings
from esci_tf.preprocessing import template_ops
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
        self.pair_preprocessor = pair_preprocessor
        self.template = template
        self.formatter = template.formatter()
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
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

    def format(self, fields) -> tuple:
        """(query texts, product texts), string tensors [B]: what the tokenizer reads."""
        return self.formatter(fields)

    def encode_with_overflow(self, fields):
        """(features dict, int32 [B] number of tokens truncation cut from each pair)."""
        queries, products = self.format(fields)
        return self.pair_preprocessor.encode_with_overflow(queries, products)

    def encode_in_batches(self, fields: dict, batch_size: int = 512, progress=None) -> tuple:
        """(features, tokens_cut) as numpy: int32 [N, max_length] per model input and [N], from
        raw fields of N rows (lists or arrays), `batch_size` rows per call of the traced graph;
        `progress` (e.g. a tqdm bar) is advanced per batch."""
        import numpy as np

        from esci_tf.preprocessing.encode import batched_encode

        columns = {k: np.asarray(v, dtype=object) for k, v in fields.items()}
        num_rows = len(next(iter(columns.values()))) if columns else 0
        return batched_encode(lambda start, stop: self.encode_with_overflow({k: v[start:stop] for k, v in columns.items()}),
                              num_rows, self.max_length, batch_size, progress)

    def call(self, fields):
        return self.encode_with_overflow(fields)[0]

    def compute_output_spec(self, fields):
        spec = keras.KerasTensor((None, self.max_length), dtype="int32")
        return {"token_ids": spec, "segment_ids": spec, "padding_mask": spec}

    def get_config(self):
        config = super().get_config()
        config.update(pair_preprocessor=self.pair_preprocessor.get_config(), template=self.template.to_dict())
        return config


def text_path_fingerprint() -> str:
    """SHA-256 of what turns raw fields into token ids besides the tokenizer's own files: the
    source of the cleaning, entity marker, template and packing modules, the Unicode data the code point table
    is built from, and the tensorflow-text version. Caches of token ids key on it, so a change
    to any of them rebuilds them."""
    import hashlib
    import unicodedata

    import tensorflow_text

    from esci_tf.preprocessing import clean_ops, entity_ops, pair_preprocessor

    digest = hashlib.sha256(f"{unicodedata.unidata_version} {tensorflow_text.__version__}".encode())
    for module in (clean_ops, entity_ops, template_ops, pair_preprocessor):
        with open(module.__file__, "rb") as stream:
            digest.update(stream.read())
    return digest.hexdigest()
