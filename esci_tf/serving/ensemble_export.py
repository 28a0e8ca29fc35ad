"""One SavedModel for a bag or an ensemble of rankers (a trainers.recipe R/final): every member
runs in the graph and their scores are combined as EnsembleRanker combines them.

Signatures take the raw ESCI fields, as a single run's export does (esci_tf.serving.export;
every input required, "" for an empty field):
- `serving_default`: query, product_locale, product_title, product_brand, product_color,
  product_bullet_point, product_description, string [B] -> score [B] and, when members
  classify, probabilities [B, 4] (E, S, C, I: the weighted members' as EnsembleRanker gives them,
  the ensemble's classifier member's on rows no weighted member classifies); each member's own
  score as score_<member>; valid bool [B], False where the query is empty after cleaning
  (esci_tf.serving.export's rule: such rows are scored all the same).
- `rank`: query and product_locale scalars, the product_* fields [N] -> the same outputs for
  the N products and order int32 [N] (indices by descending score, ties in input order).
In the graph, cross-encoders read the fields through their own FieldsPreprocessor (computed
once per distinct preprocessing); BM25 and the bi-encoders read the cleaned query and title
(and brand + title), cleaned by esci_tf.preprocessing.clean_ops with a TextCleaner the module
owns. Per-locale weights follow product_locale ("us", "es", "jp"; other values use "all").
A locale-restricted member (trained with --locales) runs only on the rows of its locales (gathered
out of the batch; its score_<member> is NaN on the other rows), and a locale's weights are over
the members that cover it, as in EnsembleRanker.weights_for. An ensemble that covers only some
locales fails a request with rows of another locale (an InvalidArgumentError naming them), as
EnsembleRanker.predict refuses them.
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
from esci_tf.rankers.base import ALL_LOCALES
from esci_tf.rankers.ensemble import BagRanker, EnsembleRanker
from esci_tf.rankers.bi_encoder import BiEncoderRanker
from esci_tf.serving import versions, warmup
from esci_tf.serving.export import (VALID_OUTPUT, in_locales, locale_checks, query_has_text, rank_endpoint,
                                    rank_names, same_rows, string_specs, warmup_inputs, warmup_rows,
                                    write_metadata)


class _Inputs:
    """One batch inside the graph: the raw fields, and what members derive from them, each
    computed once however many members read it."""

    def __init__(self, fields: dict, cleaner: TextCleaner):
        self.fields, self.cleaner, self._cache = fields, cleaner, {}

    def rows(self, locales: tuple):
        """(the _Inputs of the rows whose product_locale is in `locales`, their int64 indices [R])."""
        def compute():
            indices = tf.where(in_locales(self.fields["product_locale"], locales))[:, 0]
            return _Inputs({k: tf.gather(v, indices) for k, v in self.fields.items()}, self.cleaner), indices
        return self._once(("rows",) + tuple(locales), compute)

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
    if isinstance(ranker, CrossEncoderRanker):  # a trainers.fit run: a bag of one
        return _Bag(BagRanker([ranker]))
    if isinstance(ranker, BM25Ranker):
        return _Lexical(ranker)
    if isinstance(ranker, BiEncoderRanker):
        return _Cosine(ranker)
    raise TypeError(f"{type(ranker).__name__} cannot run inside an ensemble SavedModel")


def _on_rows(member, inputs: _Inputs, locales):
    """A member's (score [B], probabilities [B, 4] or None), run only on the rows of `locales`
    (None: every row) and NaN on the others."""
    if locales is None:
        return member(inputs)
    rows, indices = inputs.rows(locales)
    score, probabilities = member(rows)
    size = tf.shape(inputs.fields["product_locale"], out_type=tf.int64)[:1]

    def scatter(values, shape):
        return tf.tensor_scatter_nd_update(tf.fill(shape, float("nan")), indices[:, None], tf.cast(values, tf.float32))

    return (scatter(score, size),
            None if probabilities is None else scatter(probabilities, tf.concat([size, [4]], axis=0)))


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
        self.member_locales = [ranker.member_locales(n) for n in names]
        self.locales = ranker.locales  # None: every locale
        classifier = getattr(ranker, "classifier", None)
        self.classifier_index = names.index(classifier) if classifier in names else None
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
        locale = fields["product_locale"]
        with tf.control_dependencies(locale_checks(locale, self.locales, "the ensemble")):
            inputs = _Inputs({k: tf.identity(v) for k, v in fields.items()}, self.cleaner)
        outputs = [_on_rows(member, inputs, locales) for member, locales in zip(self.members, self.member_locales)]
        raw = tf.stack([tf.cast(s, tf.float32) for s, _ in outputs], axis=1)  # [B, M]
        weights = tf.gather(self.weights, self.locale_index.lookup(locale))  # [B, M]
        if any(locales is not None for locales in self.member_locales):  # a locale's weights: its members'
            weights *= tf.stack([tf.ones_like(weights[:, 0]) if locales is None else
                                 tf.cast(in_locales(locale, locales), tf.float32)
                                 for locales in self.member_locales], axis=1)
        terms = tf.where(weights != 0, weights * (raw - self.means) / self.stds, 0.0)  # NaN where not covered
        result = {"score": tf.reduce_sum(terms, axis=1), VALID_OUTPUT: query_has_text(inputs.cleaned("query"))}
        for name, (score, _) in zip(self.member_names, outputs):
            result[f"score_{name.replace(':', '_').replace('/', '_')}"] = tf.cast(score, tf.float32)
        classifying = [(i, p) for i, (_, p) in enumerate(outputs) if p is not None]
        if classifying:
            shares = tf.stack([tf.abs(weights[:, i]) for i, _ in classifying], axis=1)  # [B, C]
            stacked = tf.stack([p for _, p in classifying], axis=1)  # [B, C, 4]
            stacked = tf.where(shares[..., None] > 0, stacked, 0.0)  # NaN where a member does not cover the row
            total = tf.reduce_sum(shares, axis=1, keepdims=True)
            probabilities = tf.reduce_sum(stacked * shares[..., None], axis=1) / tf.maximum(total, 1e-12)
            fallback = None if self.classifier_index is None else outputs[self.classifier_index][1]
            if fallback is not None:  # rows no weighted member classifies: the classifier member's
                probabilities = tf.where(total > 0, probabilities, tf.cast(fallback, tf.float32))
            result["probabilities"] = probabilities
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
    locales = getattr(ranker, "locales", None)
    requests = warmup_inputs(RAW_FIELDS, warmup_rows(locales))  # rows of the locales it serves

    def write(directory):
        archive.write_out(directory, verbose=False)
        warmup.write_warmup(directory, requests)
        write_metadata(directory, locales)

    return versions.write_version(base, write, version)
