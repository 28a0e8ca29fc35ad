"""One SavedModel for a bag or an ensemble of rankers (a trainers.recipe R/final): every member
runs in the graph and their scores are combined as EnsembleRanker combines them.

Signatures take the raw ESCI fields, as a single run's export does (esci_tf.serving.export;
every input required, "" for an empty field):
- `serving_default`: query, product_locale, product_title, product_brand, product_color,
  product_bullet_point, product_description, string [B] -> score [B] and, when members
  classify, probabilities [B, 4] (E, S, C, I); each member's own score as score_<member>;
  valid bool [B], False where the query is empty after cleaning (esci_tf.serving.export's
  rule: such rows are scored all the same).
- `rank`: query and product_locale scalars, the product_* fields [N] -> the same outputs for
  the N products and order int32 [N] (indices by descending score, ties in input order).
In the graph, cross-encoders read the fields through their own FieldsPreprocessor (computed
once per distinct preprocessing); BM25 and the bi-encoders read the cleaned query and title
(and brand + title), cleaned by esci_tf.preprocessing.clean_ops with a TextCleaner the module
owns. Per-locale weights follow product_locale ("us", "es", "jp"; other values use "all").
`esci_tf.serving.export.serving_inputs(frame)` gives the inputs of a merged frame's rows.
"""

import json

import keras
import tensorflow as tf

from esci_tf.labels import GAINS
from esci_tf.preprocessing.clean_ops import TextCleaner, clean_strings
from esci_tf.preprocessing.fields_preprocessor import RAW_FIELDS
from esci_tf.rankers.bm25 import BM25Ranker
from esci_tf.rankers.cross_encoder import CrossEncoderRanker
from esci_tf.rankers.ensemble import ALL_LOCALES, BagRanker, EnsembleRanker
from esci_tf.rankers.bi_encoder import BiEncoderRanker
from esci_tf.serving import versions, warmup
from esci_tf.serving.export import (VALID_OUTPUT, query_has_text, rank_endpoint, rank_names, same_rows,
                                    string_specs, warmup_inputs)


class _Inputs:
    """One batch inside the graph: the raw fields, and what members derive from them, each
    computed once however many members read it."""

    def __init__(self, fields: dict, cleaner: TextCleaner):
        self.fields, self.cleaner, self._cache = fields, cleaner, {}

    def _once(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def cleaned(self, name: str):
        """A cleaned raw field: the query, title and brand BM25 and the bi-encoders read."""
        return self._once(name, lambda: clean_strings(self.fields[name], self.cleaner))

    def brand_title(self):
        """The cleaned brand and title joined by a space (esci_tf.rankers.bi_encoder.texts)."""
        brand, title = self.cleaned("product_brand"), self.cleaned("product_title")
        return self._once("brand_title", lambda: tf.where(
            brand == "", title, tf.where(title == "", brand, brand + " " + title)))

    def features(self, fields_preprocessor):
        """A cross-encoder's token features (shared by members with the same preprocessing)."""
        key = "features:" + json.dumps(fields_preprocessor.get_config(), sort_keys=True, default=str)
        return self._once(key, lambda: fields_preprocessor(dict(self.fields)))


class _Bag(tf.Module):
    """Mean softmax of bagged CrossEncoders (each with its own FieldsPreprocessor), or the mean
    score of other bagged rankers."""

    def __init__(self, bag: BagRanker):
        super().__init__()
        self.classifies = all(isinstance(m, CrossEncoderRanker) for m in bag.members)
        if self.classifies:
            self.models = [m.model for m in bag.members]
            self.preprocessors = [m.encoder.fields_preprocessor for m in bag.members]
            for preprocessor in self.preprocessors:
                if preprocessor.template.entity_markers:
                    raise ValueError("a cross-encoder of this ensemble was trained with entity markers, which are "
                                     "tagged in Python: the ensemble cannot be exported with raw-field signatures")
            self.gains = tf.constant(GAINS)
        else:
            self.parts = [_graph_member(m) for m in bag.members]

    def __call__(self, inputs: _Inputs):
        if not self.classifies:
            return tf.add_n([part(inputs)[0] for part in self.parts]) / len(self.parts), None
        probabilities = tf.add_n([
            tf.nn.softmax(tf.cast(model(inputs.features(preprocessor), training=False), tf.float32), axis=-1)
            for model, preprocessor in zip(self.models, self.preprocessors)]) / len(self.models)
        return tf.linalg.matvec(probabilities, self.gains), probabilities


class _Lexical(tf.Module):
    def __init__(self, ranker: BM25Ranker):
        super().__init__()
        self.ranker = ranker
        self.idf = ranker.idf_table()

    def __call__(self, inputs: _Inputs):
        scores = self.ranker.tf_scores(inputs.cleaned("query"), inputs.cleaned("product_title"), self.idf)
        return tf.cast(scores, tf.float32), None


class _Cosine(tf.Module):
    """A zero-shot or fine-tuned bi-encoder: the cosine of the query and the product text."""

    def __init__(self, ranker: BiEncoderRanker):
        super().__init__()
        ranker.ready()  # a zero-shot ranker loads its weights here
        self.ranker, self.model, self.preprocessor = ranker, ranker.model, ranker.preprocessor

    def __call__(self, inputs: _Inputs):
        products = inputs.cleaned("product_title") if self.ranker.product_text == "title" else inputs.brand_title()
        return self.ranker.tf_scores(inputs.cleaned("query"), products), None


def _graph_member(ranker):
    if isinstance(ranker, BagRanker):
        return _Bag(ranker)
    if isinstance(ranker, BM25Ranker):
        return _Lexical(ranker)
    if isinstance(ranker, BiEncoderRanker):
        return _Cosine(ranker)
    raise TypeError(f"{type(ranker).__name__} cannot run inside an ensemble SavedModel")


class EnsembleModule(tf.Module):
    """An EnsembleRanker (or a BagRanker, as an ensemble of one) as a tf.Module: calling it on a
    dict of raw-field string tensors [B] gives the serving outputs."""

    def __init__(self, ranker):
        super().__init__(name="esci_ensemble")
        if isinstance(ranker, BagRanker):
            ranker = EnsembleRanker({"bag": ranker}, {ALL_LOCALES: {"bag": 1.0}}, {"bag": (0.0, 1.0)})
        names = ranker.used_members()
        self.member_names = names
        self.members = [_graph_member(ranker.members[n]) for n in names]
        with tf.init_scope():
            self.cleaner = TextCleaner()
        locales = [l for l in ranker.weights if l != ALL_LOCALES]
        rows = [ranker.weights[ALL_LOCALES]] + [ranker.weights[l] for l in locales]
        self.weights = tf.constant([[w.get(n, 0.0) for n in names] for w in rows], tf.float32)
        self.locale_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(locales or ["\x00"], tf.string),
                                                tf.constant(list(range(1, len(locales) + 1)) or [0], tf.int64)),
            default_value=tf.constant(0, tf.int64))
        self.means = tf.constant([ranker.normalization[n][0] for n in names], tf.float32)
        self.stds = tf.constant([ranker.normalization[n][1] for n in names], tf.float32)

    def __call__(self, fields: dict) -> dict:
        inputs = _Inputs(dict(fields), self.cleaner)
        outputs = [member(inputs) for member in self.members]
        raw = tf.stack([tf.cast(s, tf.float32) for s, _ in outputs], axis=1)  # [B, M]
        weights = tf.gather(self.weights, self.locale_index.lookup(fields["product_locale"]))  # [B, M]
        result = {"score": tf.reduce_sum(weights * (raw - self.means) / self.stds, axis=1),
                  VALID_OUTPUT: query_has_text(inputs.cleaned("query"))}
        for name, (score, _) in zip(self.member_names, outputs):
            result[f"score_{name.replace(':', '_').replace('/', '_')}"] = tf.cast(score, tf.float32)
        classifying = [(i, p) for i, (_, p) in enumerate(outputs) if p is not None]
        if classifying:
            shares = tf.stack([tf.abs(weights[:, i]) for i, _ in classifying], axis=1)  # [B, C]
            stacked = tf.stack([p for _, p in classifying], axis=1)  # [B, C, 4]
            total = tf.maximum(tf.reduce_sum(shares, axis=1, keepdims=True), 1e-12)
            result["probabilities"] = tf.reduce_sum(stacked * shares[..., None], axis=1) / total
        return result


def build_archive(ranker) -> keras.export.ExportArchive:
    """An ExportArchive with serving_default and rank for the ensemble (or bag)."""
    module = EnsembleModule(ranker)

    def serve(fields):
        same_rows(fields, "serving_default")
        return module(fields)

    archive = keras.export.ExportArchive()
    archive.track(module)
    served = archive.add_endpoint("serving_default", serve, input_signature=[string_specs(RAW_FIELDS)])
    rank, rank_signature = rank_endpoint(served, *rank_names(RAW_FIELDS))
    archive.add_endpoint("rank", rank, input_signature=[rank_signature])
    return archive


def export_ensemble(ranker, base: str, version: int | None = None) -> str:
    """Write the ensemble (or bag) as <base>/<version>/ with warm-up requests; returns that directory."""
    archive = build_archive(ranker)
    requests = warmup_inputs(RAW_FIELDS)

    def write(directory):
        archive.write_out(directory, verbose=False)
        warmup.write_warmup(directory, requests)

    return versions.write_version(base, write, version)
