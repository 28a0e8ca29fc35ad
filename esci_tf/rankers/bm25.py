"""Okapi BM25 of the query against the product title: an untrained lexical ranker.

Statistics (document frequencies, mean title length) come from a corpus of titles given at
fit time and are saved with the ranker, so scoring a new file uses the catalogue it was fitted
on. Words are lower-cased runs of letters, digits and underscores (Unicode), the same in the
numpy scorer and in the TF graph the SavedModel export runs (`tf_scores`).

>>> import pandas as pd
>>> ranker = BM25Ranker.fit(["red running shoe", "blue shoe", "red cap"])
>>> frame = pd.DataFrame({"query": ["red shoe"] * 3, "product_title": ["red running shoe", "blue shoe", "red cap"]})
>>> [round(float(s), 3) for s in ranker.scores(frame)]
[0.833, 0.502, 0.502]
"""

import collections
import math
import os
import re

import numpy as np
import tensorflow as tf

from esci_tf import files
from esci_tf.preprocessing.cleaning import clean_texts
from esci_tf.rankers.base import RANKER_FILE, check_locales, locales_record, ranker_locales

KIND = "bm25"
_WORD = re.compile(r"\w+", re.UNICODE)  # Unicode letters, digits, underscore
_TF_NOT_WORD = r"[^\p{L}\p{N}_]+"  # the same words in RE2, as the gaps between them


def words(text: str) -> list:
    """Lower-cased word tokens of a text."""
    return _WORD.findall(str(text).lower())


class BM25Ranker:
    """BM25 (k1, b) of the cleaned query against the cleaned product title."""

    kind = KIND

    locales = None  # the locales it scores (None: every locale)

    def __init__(self, document_frequency: dict, num_documents: int, mean_length: float,
                 k1: float = 1.5, b: float = 0.75):
        if num_documents < 1:
            raise ValueError("BM25 needs a non-empty corpus")
        self.document_frequency = dict(document_frequency)
        self.num_documents = int(num_documents)
        self.mean_length = max(float(mean_length), 1e-9)
        self.k1, self.b = float(k1), float(b)

    @classmethod
    def fit(cls, titles, k1: float = 1.5, b: float = 0.75) -> "BM25Ranker":
        """Statistics of a corpus of (raw) titles, one per product."""
        documents = [words(t) for t in clean_texts(titles)]
        frequency = collections.Counter(w for document in documents for w in set(document))
        mean_length = np.mean([len(d) for d in documents]) if documents else 0.0
        return cls(frequency, len(documents), mean_length, k1, b)

    @classmethod
    def fit_catalog(cls, products, **kwargs) -> "BM25Ranker":
        """Statistics of the distinct products of a products (or merged) frame."""
        if "product_id" in products.columns:
            products = products.drop_duplicates([c for c in ("product_id", "product_locale") if c in products])
        return cls.fit(products["product_title"].fillna("").astype(str).tolist(), **kwargs)

    def idf(self, word: str) -> float:
        frequency = self.document_frequency.get(word, 0)
        return math.log(1.0 + (self.num_documents - frequency + 0.5) / (frequency + 0.5))

    def score_texts(self, queries, titles) -> np.ndarray:
        """BM25 of each (query, title) pair of already cleaned texts."""
        if len(queries) != len(titles):
            raise ValueError(f"{len(queries)} queries but {len(titles)} titles")
        scores = np.zeros(len(queries), np.float64)
        for row, (query, title) in enumerate(zip(queries, titles)):
            title_words = words(title)
            counts = collections.Counter(title_words)
            norm = self.k1 * (1.0 - self.b + self.b * len(title_words) / self.mean_length)
            for word in words(query):
                frequency = counts.get(word, 0)
                if frequency:
                    scores[row] += self.idf(word) * frequency * (self.k1 + 1.0) / (frequency + norm)
        return scores

    def scores(self, frame) -> np.ndarray:
        """[N] BM25 scores of a merged frame's (query, product_title) pairs."""
        check_locales(self, frame)
        queries = clean_texts(frame["query"].tolist())
        titles = clean_texts(frame["product_title"].tolist())
        return self.score_texts(queries, titles)

    # -- the same score in TF ops (for the exported SavedModel)
    def idf_table(self):
        """The IDF of every corpus word as a TF lookup table (unknown words: the IDF of df 0)."""
        vocabulary = sorted(self.document_frequency)
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(vocabulary or [""], tf.string),
                                                tf.constant([self.idf(w) for w in vocabulary] or [0.0], tf.float32)),
            default_value=tf.constant(self.idf(""), tf.float32))

    def tf_scores(self, queries, titles, idf_table=None):
        """float32 [B] BM25 of string tensors [B] of cleaned queries and titles (`idf_table`: an
        idf_table() to reuse, e.g. the one a SavedModel tracks)."""
        idf = idf_table if idf_table is not None else self.idf_table()
        query_words = _tf_words(queries)
        title_words = _tf_words(titles)
        matches = tf.cast(tf.equal(query_words.to_tensor("\x00q")[:, :, None],
                                   title_words.to_tensor("\x00t")[:, None, :]), tf.float32)
        frequency = tf.reduce_sum(matches, axis=-1)  # [B, Q]: how often each query word is in the title
        length = tf.cast(title_words.row_lengths(), tf.float32)[:, None]
        norm = self.k1 * (1.0 - self.b + self.b * length / self.mean_length)
        weights = idf.lookup(query_words).to_tensor(0.0)
        return tf.reduce_sum(weights * frequency * (self.k1 + 1.0) / (frequency + norm), axis=-1)

    # -- saving
    def save(self, directory: str) -> None:
        state = {"kind": KIND, "k1": self.k1, "b": self.b, "num_documents": self.num_documents,
                 "mean_length": self.mean_length, "document_frequency": self.document_frequency,
                 **locales_record(self)}
        files.write_json(os.path.join(directory, RANKER_FILE), state, indent=None)

    @classmethod
    def load(cls, directory: str, batch_size: int = 128) -> "BM25Ranker":  # batch_size: unused (no model)
        state = files.read_json(os.path.join(directory, RANKER_FILE))
        ranker = cls(state["document_frequency"], state["num_documents"], state["mean_length"], state["k1"],
                     state["b"])
        ranker.locales = ranker_locales(directory)
        return ranker


def _tf_words(texts):
    """Ragged [B, None] lower-cased words of a string tensor [B] (RE2: the numpy scorer's \\w)."""
    import tensorflow_text as tf_text

    lowered = tf.strings.lower(texts, encoding="utf-8")
    return tf_text.regex_split(lowered, delim_regex_pattern=_TF_NOT_WORD)
