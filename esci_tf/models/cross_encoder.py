"""CrossEncoder: backbone -> pooled [CLS] representation -> 4-class ESCI logits.

Example (random init, tiny):
>>> import numpy as np
>>> from esci_tf.models import build_cross_encoder
>>> model = build_cross_encoder("bert", backbone_config=dict(vocabulary_size=100,
...     num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
...     max_sequence_length=32), pooling="weighted_layers", num_pooled_layers=2)
>>> batch = {"token_ids": np.ones((2, 8), "int32"), "segment_ids": np.zeros((2, 8), "int32"),
...          "padding_mask": np.ones((2, 8), "int32")}
>>> model(batch).shape
TensorShape([2, 4])
"""

import numpy as np
import keras
from keras import ops

from esci_tf import labels, special_tokens
from esci_tf.choices import POOLINGS  # defined without TensorFlow, for the flags
from esci_tf.models import checkpoints, layer_selection, precision, registry, vocabulary
from esci_tf.models.heads import MultiSampleDropout, QueryCrossAttention, WeightedLayerPooling, masked_mean
from esci_tf.models.kernels import KERNELS, check_kernels, install as install_kernels

# Configs saved before `kernels` (an on-disk format) carry one boolean per kernel instead,
# True when absent (the default then): fast_dropout, fast_gelu, ... -> kernel name.
LEGACY_KERNEL_SWITCHES = {f"fast_{name}": name for name in KERNELS}
QUERY_SEGMENT_SOURCES = ("segment_ids", "separator")


@keras.saving.register_keras_serializable(package="esci_tf")
class CrossEncoder(keras.Model):
    """Pair classifier: input dict {"token_ids", "segment_ids", "padding_mask"} int32 [B, L]
    -> float32 logits [B, 4] (labels.py order E, S, C, I).

    Args:
        backbone: a keras-hub backbone (see registry.BACKBONES), with its vocabulary already
            grown for the special tokens.
        backbone_name: registry name; default: found from the backbone's class.
        pooling: "cls" (last layer [CLS], through the pooler), "weighted_layers" (learned mix
            of the [CLS] vectors of the last `num_pooled_layers` layers, through the pooler) or
            "mean" (mean of the last layer over the real tokens, no pooler: how sentence
            encoders such as all-MiniLM-L6-v2 were trained).
        dropout_rates: one rate per dropout mask before the classifier; more than one is
            multi-sample dropout (logits averaged in training, single pass at inference).
        cross_attention: add QueryCrossAttention; its pooled output is concatenated with
            the pooled [CLS] vector.
        query_segment_from: how the cross attention finds the query tokens: "segment_ids"
            (segment 0) or "separator" (before the first `separator_token_id`). Default: by
            backbone (segment ids if the backbone takes them).
        separator_token_id: the tokenizer's id that ends the query
            (`PairPreprocessor.separator_token_id`); required when the cross attention finds
            the query by separator.
        kernels: the esci_tf.models.kernels installed on every layer that takes them (the
            backbone's included), a list or tuple of names: "dropout" (FastDropout: the same
            distribution from 16-bit random draws), "gelu" (the exact GELU in float32: no slow
            bfloat16 Erfc kernel on CPU), "attention" (MultiHeadAttention's scores and context
            as head-major batched matmuls instead of einsums), "dense" (every Dense /
            EinsumDense projection as one 2-D MatMul + BiasAdd, + the feed-forward GELU at
            inference, that oneDNN fuses into one kernel), "layer_norm" (last-axis layer norm
            in fewer float32 passes, fused gradient). Default: all of kernels.KERNELS; () keeps
            Keras' own kernels everywhere. Kept as `self.kernels` in KERNELS order.
        preprocessor: the FieldsPreprocessor of raw ESCI fields (optional, as keras-hub's
            TextClassifier takes one): with it, `predict` takes a dict of raw string fields
            (esci_tf.preprocessing.fields_preprocessor.RAW_FIELDS) and tokenizes them in the
            tf.data pipeline. Saved in the model's config.

    Prediction carries ids: when the predicted inputs hold an "example_id" (int), each batch's
    output is {"logits", "example_id"}, so callers place results by id, not by the order batches
    come back in (which distributed prediction does not keep).
    """

    def __init__(
        self,
        backbone,
        backbone_name=None,
        pooling="cls",
        num_pooled_layers=4,
        dropout_rates=(0.1,),
        cross_attention=False,
        cross_attention_heads=None,
        query_segment_from=None,
        separator_token_id=None,
        kernels=KERNELS,
        preprocessor=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        kernels = check_kernels(kernels)
        if isinstance(preprocessor, dict):  # its class is registered by esci_tf.preprocessing's import
            preprocessor = keras.saving.deserialize_keras_object(preprocessor)
        entry = (
            registry.get_entry(backbone_name) if backbone_name
            else registry.entry_for_backbone(backbone)
        )
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        query_segment_from = query_segment_from or (
            "segment_ids" if entry.uses_segment_ids else "separator"
        )
        if query_segment_from not in QUERY_SEGMENT_SOURCES:
            raise ValueError(
                f"query_segment_from must be one of {QUERY_SEGMENT_SOURCES}, "
                f"got {query_segment_from!r}"
            )
        if cross_attention and query_segment_from == "separator" and separator_token_id is None:
            raise ValueError(
                f"cross_attention on {entry.name} finds the query by its separator token: pass "
                f"separator_token_id=preprocessor.separator_token_id (the tokenizer's id)"
            )
        layer_outputs = entry.layer_outputs(backbone)
        num_used = num_pooled_layers if pooling == "weighted_layers" else 1
        if not 1 <= num_used <= len(layer_outputs):
            raise ValueError(
                f"num_pooled_layers={num_pooled_layers} but the backbone has "
                f"{len(layer_outputs)} layers"
            )
        self.backbone = backbone
        self.entry = entry
        self.backbone_name = entry.name
        self.pooling = pooling
        self.num_pooled_layers = num_pooled_layers
        self.dropout_rates = tuple(float(r) for r in dropout_rates)
        self.cross_attention = bool(cross_attention)
        self.cross_attention_heads = cross_attention_heads or backbone.num_heads
        self.query_segment_from = query_segment_from
        self.separator_token_id = separator_token_id
        self.hidden_dim = backbone.hidden_dim

        # The last `num_used` layer outputs of the backbone's own graph (shares its weights).
        self.encoder = keras.Model(backbone.input, layer_outputs[-num_used:], name="encoder")
        self.layer_pooling = (
            WeightedLayerPooling(num_used, dtype=self.dtype_policy, name="layer_pooling")
            if pooling == "weighted_layers" else None
        )
        # BERT-style backbones bring a pretrained [CLS] pooler; the others get a fresh one
        # (the shape of XLMRobertaForSequenceClassification's classifier.dense).
        self.pooler = None if pooling == "mean" else entry.pooler_layer(backbone) or keras.layers.Dense(
            self.hidden_dim, activation="tanh", dtype=self.dtype_policy, name="pooler",
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self.query_attention = (
            QueryCrossAttention(
                self.cross_attention_heads, dropout=self.dropout_rates[0],
                dtype=self.dtype_policy, name="query_attention",
            )
            if self.cross_attention else None
        )
        self.head = MultiSampleDropout(
            labels.NUM_CLASSES, rates=self.dropout_rates, dtype=self.dtype_policy,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="head",
        )
        self._build_heads()
        self.kernels = kernels
        install_kernels(self, kernels)
        self.preprocessor = preprocessor

    def _build_heads(self):
        hidden = self.hidden_dim
        if self.layer_pooling is not None:
            self.layer_pooling.build([(None, None, hidden)] * self.layer_pooling.num_layers)
        if self.pooler is not None and not self.pooler.built:
            self.pooler.build((None, hidden))
        features = hidden
        if self.query_attention is not None:
            self.query_attention.build((None, None, hidden))
            features += hidden
        self.head.build((None, features))
        self.built = True

    def build(self, input_shape=None):
        # Everything is built in __init__ (the backbone is a functional model).
        self.built = True

    @property
    def word_embeddings(self):
        """The token embedding keras.Variable [vocabulary, hidden] (FGM perturbs it)."""
        return self.entry.word_embeddings(self.backbone)

    def _backbone_inputs(self, inputs):
        keys = ["token_ids", "padding_mask"] + (
            ["segment_ids"] if self.entry.uses_segment_ids else []
        )
        missing = [k for k in keys if k not in inputs]
        if missing:
            raise KeyError(f"CrossEncoder inputs lack {missing}; got keys {sorted(inputs)}")
        return {k: inputs[k] for k in keys}

    def _query_product_masks(self, inputs):
        """Boolean [B, L] masks of the query tokens and the product tokens."""
        padding = ops.cast(inputs["padding_mask"], "bool")
        token_ids = inputs["token_ids"]
        positions = ops.arange(ops.shape(token_ids)[1])[None, :]
        not_cls = positions > 0
        if self.query_segment_from == "segment_ids":
            segment_ids = inputs["segment_ids"]
            query = padding & not_cls & (segment_ids == 0)
            product = padding & (segment_ids > 0)
        else:
            is_separator = token_ids == self.separator_token_id
            first = ops.argmax(ops.cast(is_separator, "int32"), axis=1)[:, None]
            query = padding & not_cls & (positions < first)
            product = padding & (positions > first) & ops.logical_not(is_separator)
        return query, product

    def call(self, inputs, training=None):
        outputs = self.encoder(self._backbone_inputs(inputs), training=training)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        if self.pooling == "mean":
            features = ops.cast(masked_mean(outputs[-1], inputs["padding_mask"]), outputs[-1].dtype)
        elif self.layer_pooling is not None:
            features = self.pooler(self.layer_pooling(list(outputs)))
        else:
            features = self.pooler(outputs[-1][:, 0, :])
        if self.query_attention is not None:
            query, product = self._query_product_masks(inputs)
            attended = self.query_attention(
                outputs[-1], query, product, inputs["padding_mask"], training=training
            )
            features = ops.concatenate([features, ops.cast(attended, features.dtype)], axis=-1)
        return ops.cast(self.head(features, training=training), "float32")

    def predict_step(self, data):
        x = data[0] if isinstance(data, tuple) else data
        if isinstance(x, dict) and "example_id" in x:
            features = {k: v for k, v in x.items() if k != "example_id"}
            return {"logits": self(features, training=False), "example_id": x["example_id"]}
        return super().predict_step(data)

    def predict(self, x=None, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """keras.Model.predict; with a preprocessor, `x` may be a dict of raw string fields (and an
        optional "example_id"), tokenized batch by batch in the input pipeline."""
        if self.preprocessor is not None and isinstance(x, dict) and "query" in x:
            x = self.raw_fields_dataset(x, batch_size or 32)
            batch_size = None
        return super().predict(x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks)

    def raw_fields_dataset(self, fields: dict, batch_size: int, encode_batch: int = 1024):
        """tf.data batches of model inputs (plus "example_id" when given) from raw string fields.

        The preprocessor runs on the host, `encode_batch` rows at a time, through its traced
        functions (traced once per process, not once per dataset)."""
        import tensorflow as tf

        fields = dict(fields)
        ids = fields.pop("example_id", None)
        features, _ = self.preprocessor.encode_in_batches(fields, encode_batch)
        if not len(features["token_ids"]):
            raise ValueError("no rows to predict")
        if ids is not None:
            features["example_id"] = np.asarray(ids, np.int64)
        return tf.data.Dataset.from_tensor_slices(features).batch(batch_size)

    def get_config(self):
        config = super().get_config()
        config.update({
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "backbone_name": self.backbone_name,
            "pooling": self.pooling,
            "num_pooled_layers": self.num_pooled_layers,
            "dropout_rates": list(self.dropout_rates),
            "cross_attention": self.cross_attention,
            "cross_attention_heads": self.cross_attention_heads,
            "query_segment_from": self.query_segment_from,
            "separator_token_id": self.separator_token_id,
            "kernels": list(self.kernels),
        })
        if self.preprocessor is not None:
            config["preprocessor"] = keras.saving.serialize_keras_object(self.preprocessor)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        legacy = {key: bool(config.pop(key)) for key in LEGACY_KERNEL_SWITCHES if key in config}
        if legacy:
            if "kernels" in config:
                raise ValueError(f"CrossEncoder config has both kernels and the older {sorted(legacy)}")
            config["kernels"] = [name for key, name in LEGACY_KERNEL_SWITCHES.items() if legacy.get(key, True)]
        # Importing the backbone class registers it (RemBERT's module loads lazily).
        registry.get_entry(config["backbone_name"]).backbone_class
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def multi_sample_dropout_rates(num_samples: int, dropout: float):
    """K evenly spaced rates from `dropout` to max(dropout, 0.5); one rate when K is 0 or 1."""
    if num_samples < 0:
        raise ValueError(f"multi_sample_dropout must be >= 0, got {num_samples}")
    if num_samples <= 1:
        return (float(dropout),)
    return tuple(float(r) for r in np.linspace(dropout, max(dropout, 0.5), num_samples))


def build_cross_encoder(
    backbone: str,
    checkpoint: str | None = None,
    backbone_config: dict | None = None,
    num_special_tokens: int = len(special_tokens.ALL_SPECIAL_TOKENS),
    pooling: str = "cls",
    num_pooled_layers: int = 4,
    multi_sample_dropout: int = 0,
    cross_attention: bool = False,
    separator_token_id: int | None = None,
    dropout: float = 0.1,
    dtype_policy: str | None = None,
    tokenizer_vocabulary_size: int | None = None,
    embedding_noise_stddev: float = 0.0,
    seed: int = 0,
    kernels=KERNELS,
    preprocessor=None,
    keep_layers: int = 0,
) -> CrossEncoder:
    """A CrossEncoder on a pretrained (`checkpoint`) or random (`backbone_config`) backbone.

    The backbone's vocabulary grows by `num_special_tokens` rows at ids
    `tokenizer_vocabulary_size + i` (default: the backbone's vocabulary size), initialised to
    the mean embedding (+ `embedding_noise_stddev` noise). `multi_sample_dropout` K > 1 uses
    K dropout rates from `dropout` to 0.5. `dtype_policy` "mixed_bfloat16", "float32",
    "auto" (precision.recommended_policy() for this machine) or None (the global Keras
    policy); logits are float32 either way. `separator_token_id`: the preprocessor's
    (`PairPreprocessor.separator_token_id`), needed for `cross_attention` on a backbone without
    segment ids. `kernels` (names from kernels.KERNELS, () for
    Keras' own) and `preprocessor`: see CrossEncoder. `keep_layers` N > 0: a backbone of N of
    the loaded (or random) backbone's layers, initialised from them
    (esci_tf.models.layer_selection: evenly spread, the first and the last kept).
    """
    if (checkpoint is None) == (backbone_config is None):
        raise ValueError("give exactly one of checkpoint (pretrained) and backbone_config (random)")
    check_kernels(kernels)  # before loading any weights
    if dtype_policy == "auto":
        dtype_policy = precision.recommended_policy()
    entry = registry.get_entry(backbone)
    if checkpoint is not None:
        model = checkpoints.load_backbone(backbone, checkpoint, dtype=dtype_policy)
    else:
        model = entry.backbone_class(**backbone_config, dtype=dtype_policy)
    if keep_layers:
        model = layer_selection.keep_layers(model, keep_layers)
    model = vocabulary.grow_vocabulary(
        model, num_special_tokens, base_vocabulary_size=tokenizer_vocabulary_size,
        noise_stddev=embedding_noise_stddev, seed=seed,
    )
    return CrossEncoder(
        model,
        backbone_name=entry.name,
        pooling=pooling,
        num_pooled_layers=num_pooled_layers,
        dropout_rates=multi_sample_dropout_rates(multi_sample_dropout, dropout),
        cross_attention=cross_attention,
        separator_token_id=separator_token_id,
        kernels=kernels,
        preprocessor=preprocessor,
        dtype=dtype_policy,
    )
