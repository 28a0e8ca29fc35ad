"""One SavedModel for a bag or an ensemble of rankers (a trainers.recipe R/final): every member
runs in the graph and their scores are combined as EnsembleRanker combines them.

Signature `serving_default(query_text, product_text, query, product_title, brand_title,
product_locale)`,
string tensors [B]:
- query_text, product_text: the cross-encoder template's pair (FrameEncoder.format: cleaned,
  language token, fields, entity markers when the run used them);
- query, product_title: the cleaned query and title (esci_tf.data.cleaning.clean_text), what
  BM25 and the zero-shot cosine read; brand_title: the cleaned brand and title, what a
  fine-tuned bi-encoder reads (esci_tf.rankers.bi_encoder.texts);
- product_locale: "us", "es", "jp" (per-locale weights; other values use the "all" weights).
Outputs: score [B] and, when members classify, probabilities [B, 4]; each member's own score
as score_<member>. `serving_inputs(frame, template)` builds these from a merged frame.
"""

import os

import numpy as np
import tensorflow as tf

from esci_tf import files
from esci_tf.labels import GAINS
from esci_tf.rankers.bm25 import BM25Ranker
from esci_tf.rankers.cross_encoder import CrossEncoderRanker
from esci_tf.rankers.ensemble import ALL_LOCALES, BagRanker, EnsembleRanker
from esci_tf.rankers.bi_encoder import BiEncoderRanker, texts as bi_encoder_texts
from esci_tf.serving.export import TEMPLATE_ASSET

INPUT_NAMES = ("query_text", "product_text", "query", "product_title", "brand_title", "product_locale")


def serving_inputs(frame, template) -> dict:
    """The signature's string inputs for every row of a merged frame (numpy object arrays)."""
    query_text, product_text = template.format(frame)
    queries, titles = bi_encoder_texts(frame, "title")
    return {"query_text": np.array(query_text, object), "product_text": np.array(product_text, object),
            "query": np.array(queries, object), "product_title": np.array(titles, object),
            "brand_title": np.array(bi_encoder_texts(frame, "brand_title")[1], object),
            "product_locale": frame["product_locale"].astype(str).to_numpy(object)}


class _Bag(tf.Module):
    """Mean softmax of bagged CrossEncoders (each with its own PairPreprocessor), or the mean
    score of other bagged rankers."""

    def __init__(self, bag: BagRanker):
        super().__init__()
        self.classifies = all(isinstance(m, CrossEncoderRanker) for m in bag.members)
        if self.classifies:
            self.models = [m.model for m in bag.members]
            self.preprocessors = [m.encoder.preprocessor for m in bag.members]
            self.gains = tf.constant(GAINS)
        else:
            self.parts = [_graph_member(m) for m in bag.members]

    def __call__(self, inputs):
        if not self.classifies:
            return tf.add_n([part(inputs)[0] for part in self.parts]) / len(self.parts), None
        probabilities = tf.add_n([
            tf.nn.softmax(tf.cast(model(preprocessor(inputs["query_text"], inputs["product_text"]), training=False),
                                  tf.float32), axis=-1)
            for model, preprocessor in zip(self.models, self.preprocessors)]) / len(self.models)
        return tf.linalg.matvec(probabilities, self.gains), probabilities


class _Lexical(tf.Module):
    def __init__(self, ranker: BM25Ranker):
        super().__init__()
        self.ranker = ranker
        self.idf = ranker.idf_table()

    def __call__(self, inputs):
        return tf.cast(self.ranker.tf_scores(inputs["query"], inputs["product_title"], self.idf), tf.float32), None


class _Cosine(tf.Module):
    """A zero-shot or fine-tuned bi-encoder: the cosine of the query and the product text."""

    def __init__(self, ranker: BiEncoderRanker):
        super().__init__()
        ranker.ready()  # a zero-shot ranker loads its weights here
        self.ranker, self.model, self.preprocessor = ranker, ranker.model, ranker.preprocessor

    def __call__(self, inputs):
        products = inputs["product_title"] if self.ranker.product_text == "title" else inputs["brand_title"]
        return self.ranker.tf_scores(inputs["query"], products), None


def _graph_member(ranker):
    if isinstance(ranker, BagRanker):
        return _Bag(ranker)
    if isinstance(ranker, BM25Ranker):
        return _Lexical(ranker)
    if isinstance(ranker, BiEncoderRanker):
        return _Cosine(ranker)
    raise TypeError(f"{type(ranker).__name__} cannot run inside an ensemble SavedModel")


class EnsembleModule(tf.Module):
    """An EnsembleRanker (or a BagRanker, as an ensemble of one) as a tf.Module with signatures."""

    def __init__(self, ranker):
        super().__init__(name="esci_ensemble")
        if isinstance(ranker, BagRanker):
            ranker = EnsembleRanker({"bag": ranker}, {ALL_LOCALES: {"bag": 1.0}}, {"bag": (0.0, 1.0)})
        names = ranker.used_members()
        self.member_names = names
        self.members = [_graph_member(ranker.members[n]) for n in names]
        locales = [l for l in ranker.weights if l != ALL_LOCALES]
        rows = [ranker.weights[ALL_LOCALES]] + [ranker.weights[l] for l in locales]
        self.weights = tf.constant([[w.get(n, 0.0) for n in names] for w in rows], tf.float32)
        self.locale_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(locales or ["\x00"], tf.string),
                                                tf.constant(list(range(1, len(locales) + 1)) or [0], tf.int64)),
            default_value=tf.constant(0, tf.int64))
        self.means = tf.constant([ranker.normalization[n][0] for n in names], tf.float32)
        self.stds = tf.constant([ranker.normalization[n][1] for n in names], tf.float32)
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec([None], tf.string, name=name) for name in INPUT_NAMES])

    def _serve(self, query_text, product_text, query, product_title, brand_title, product_locale):
        inputs = dict(zip(INPUT_NAMES, (query_text, product_text, query, product_title, brand_title, product_locale)))
        outputs = [member(inputs) for member in self.members]
        raw = tf.stack([tf.cast(s, tf.float32) for s, _ in outputs], axis=1)  # [B, M]
        weights = tf.gather(self.weights, self.locale_index.lookup(product_locale))  # [B, M]
        result = {"score": tf.reduce_sum(weights * (raw - self.means) / self.stds, axis=1)}
        for name, (score, _) in zip(self.member_names, outputs):
            result[f"score_{name.replace(':', '_').replace('/', '_')}"] = tf.cast(score, tf.float32)
        classifying = [(i, p) for i, (_, p) in enumerate(outputs) if p is not None]
        if classifying:
            shares = tf.stack([tf.abs(weights[:, i]) for i, _ in classifying], axis=1)  # [B, C]
            stacked = tf.stack([p for _, p in classifying], axis=1)  # [B, C, 4]
            total = tf.maximum(tf.reduce_sum(shares, axis=1, keepdims=True), 1e-12)
            result["probabilities"] = tf.reduce_sum(stacked * shares[..., None], axis=1) / total
        return result


def template_of(ranker) -> dict | None:
    """The template of the cross-encoders a bag or ensemble holds (they share the recipe's)."""
    bags = [ranker] if isinstance(ranker, BagRanker) else [m for m in ranker.members.values() if isinstance(m, BagRanker)]
    return bags[0].members[0].encoder.template.to_dict() if bags else None


def export_ensemble(ranker, export_dir: str, template: dict | None = None) -> str:
    """Write the ensemble (or bag) as a SavedModel with serving_default; returns export_dir."""
    module = EnsembleModule(ranker)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
    if template is not None:
        files.write_json(os.path.join(export_dir, TEMPLATE_ASSET), dict(sorted(template.items())))
    return export_dir
