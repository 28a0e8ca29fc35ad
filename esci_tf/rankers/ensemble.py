"""Rankers made of rankers: a bag (mean class probabilities of models trained alike, e.g. the
fold models of a recipe stage) and a weighted ensemble of any rankers.

EnsembleRanker score = sum over members m of w_m * (s_m - mean_m) / std_m, where s_m is the
member's ranking score and mean_m, std_m standardise it (fixed numbers, measured on the
out-of-fold scores the weights were fitted on), so one request of any size scores the same way;
weights may differ per locale (a locale without its own weights uses the "all" weights). Its
class probabilities, where members classify, are their weight-averaged probabilities; on rows
where no weighted member classifies (weights that chose a bi-encoder alone, say), those of its
`classifier` member, if it has one (a recipe's cross-encoder: kept for tasks 2 and 3 even when
its score weight is 0). Members are saved inside the ensemble's directory (members/<name>/), so the directory is self-contained.

Locale-restricted members (a `.locales` tuple: trained with --locales) score only their locales'
rows. The weights of a locale are over the members that cover it: a locale's own weights may
name only members that cover it (checked when the ensemble is built or loaded); a locale without
its own weights takes the "all" weights of the members that cover it. The ensemble covers the
locales some weighted member covers (or the `locales` it was saved with, a subset), and refuses
rows of another locale (esci_tf.rankers.base.check_locales).

>>> import pandas as pd
>>> from esci_tf.rankers.bm25 import BM25Ranker
>>> bm25 = BM25Ranker.fit(["red shoe", "blue shoe", "red cap"])
>>> ensemble = EnsembleRanker({"bm25": bm25}, {"all": {"bm25": 1.0}}, {"bm25": (0.5, 0.25)})
>>> frame = pd.DataFrame({"query": ["red shoe"] * 2, "product_title": ["red shoe", "red cap"],
...                       "product_locale": ["us", "us"]})
>>> [round(float(s), 3) for s in ensemble.scores(frame)]
[1.76, -0.12]
"""

import os

import numpy as np

from esci_tf import files
from esci_tf.labels import ranking_score
from esci_tf.rankers.base import (ALL_LOCALES, LOCALES_KEY, RANKER_FILE, Prediction, check_locales, classifies,
                                  common_locales, covered_locales, covers, normalize_locales, predict_covered)
from esci_tf.rankers.registry import load_ranker

CLASSIFIER_KEY = "classifier"  # in ranker.json


class BagRanker:
    """Rankers trained alike (e.g. one per fold): the mean of their class probabilities when
    they classify (the score is then its ranking score), else the mean of their scores."""

    kind = "bag"

    def __init__(self, members: list):
        if not members:
            raise ValueError("a bag needs at least one member")
        self.members = list(members)
        self.classifies = all(classifies(m) for m in self.members)
        self.locales = common_locales(getattr(m, "locales", None) for m in self.members)

    def predict(self, frame) -> Prediction:
        check_locales(self, frame)
        if self.classifies:
            probabilities = np.mean([m.probabilities(frame) for m in self.members], axis=0)
            return Prediction(ranking_score(probabilities), probabilities)
        return Prediction(np.mean([np.asarray(m.scores(frame), np.float64) for m in self.members], axis=0))

    def scores(self, frame) -> np.ndarray:
        return self.predict(frame).scores

    @staticmethod
    def save(directory: str, member_dirs: list) -> None:
        """Record a bag of the rankers in `member_dirs` (relative to `directory`)."""
        files.write_json(os.path.join(directory, RANKER_FILE), {"kind": BagRanker.kind, "members": list(member_dirs)})

    @classmethod
    def load(cls, directory: str, batch_size: int = 128) -> "BagRanker":
        saved = files.read_json(os.path.join(directory, RANKER_FILE))
        return cls([load_ranker(os.path.join(directory, d), batch_size) for d in saved["members"]])


class EnsembleRanker:
    """Weighted sum of standardised member scores (see the module docstring)."""

    kind = "ensemble"

    def __init__(self, members: dict, weights: dict, normalization: dict, locales=None, classifier=None):
        """members {name: ranker}; weights {locale or "all": {name: weight}}; normalization
        {name: (mean, std)}; locales: the only locales it scores (None: those its members cover).
        ValueError when a locale's weights name a member that does not cover it, or a locale of
        `locales` has no weighted member covering it."""
        if ALL_LOCALES not in weights:
            raise ValueError(f'ensemble weights need an "{ALL_LOCALES}" entry, got {sorted(weights)}')
        unknown = {n for w in weights.values() for n in w} - set(members)
        if unknown:
            raise ValueError(f"ensemble weights name unknown members {sorted(unknown)}")
        self.members = dict(members)
        self.weights = {locale: dict(w) for locale, w in weights.items()}
        self.normalization = {name: (float(m), float(s) or 1.0) for name, (m, s) in normalization.items()}
        if classifier is not None and classifier not in self.members:
            raise ValueError(f"the ensemble's classifier {classifier!r} is not one of its members {sorted(self.members)}")
        self.classifier = classifier  # gives the class probabilities of rows no weighted member classifies
        for locale, named in self.weights.items():
            outside = [n for n, w in named.items() if w and locale != ALL_LOCALES and not self.covers(n, locale)]
            if outside:
                raise ValueError(f"the ensemble's weights for locale {locale!r} name member {outside[0]}, which was "
                                 f"trained for locale(s) {','.join(self.member_locales(outside[0]))} only")
            if locale != ALL_LOCALES and not any(named.values()):
                raise ValueError(f"the ensemble's weights for locale {locale!r} name no member")
        self.locales = normalize_locales(locales) if locales is not None else self._covered_locales()
        for locale in self.locales or ():
            if not self.weights_for(locale):
                raise ValueError(f"no weighted member of the ensemble covers locale {locale!r}")

    def member_locales(self, name: str) -> tuple | None:
        return getattr(self.members[name], "locales", None)

    def covers(self, name: str, locale) -> bool:
        """Whether member `name` scores rows of `locale`."""
        return covers(self.member_locales(name), locale)

    def weights_for(self, locale) -> dict:
        """{member: weight} of `locale`'s rows: its own weights, or the "all" weights of the
        members that cover it; nonzero weights only (empty: no member covers it)."""
        named = self.weights.get(str(locale), self.weights[ALL_LOCALES])
        return {n: w for n, w in named.items() if w and self.covers(n, locale)}

    def _covered_locales(self) -> tuple | None:
        return covered_locales(self.weights, {n: self.member_locales(n) for n in self.members})

    @property
    def classifies(self) -> bool:
        """Every weight group (each locale's, "all") weights a member that classifies, or the
        ensemble has a classifier member that does."""
        if self.classifier is not None and classifies(self.members[self.classifier]):
            return True
        return all(any(w and classifies(self.members[n]) for n, w in group.items()) for group in self.weights.values())

    def used_members(self) -> list:
        """The members it runs: those with a weight, and the classifier."""
        return [n for n in self.members
                if any(w.get(n, 0.0) for w in self.weights.values()) or n == self.classifier]

    def member_predictions(self, frame) -> dict:
        """{member: its Prediction on `frame`}, each member scoring only the rows of its locales
        (NaN elsewhere)."""
        return {name: predict_covered(self.members[name], frame) for name in self.used_members()}

    def combine(self, frame, predictions: dict) -> Prediction:
        """The ensemble's output from its members' outputs on `frame`."""
        locales = frame["product_locale"].to_numpy() if "product_locale" in frame else np.full(len(frame), "")
        scores = np.zeros(len(frame), np.float64)
        probabilities, total = np.zeros((len(frame), 4), np.float64), np.zeros((len(frame), 1), np.float64)
        for locale in np.unique(locales):
            rows = locales == locale
            for name, weight in self.weights_for(locale).items():
                mean, std = self.normalization[name]
                scores[rows] += weight * (predictions[name].scores[rows] - mean) / std
                if predictions[name].probabilities is not None:
                    probabilities[rows] += abs(weight) * predictions[name].probabilities[rows]
                    total[rows] += abs(weight)
        classified = total[:, 0] > 0
        probabilities = probabilities / np.maximum(total, 1e-12)
        fallback = predictions[self.classifier].probabilities if self.classifier is not None else None
        if fallback is not None and not classified.all():  # rows no weighted member classifies
            probabilities[~classified] = fallback[~classified]
            classified |= ~np.isnan(fallback).any(axis=1)
        return Prediction(scores, probabilities if classified.all() else None)

    def predict(self, frame) -> Prediction:
        check_locales(self, frame)
        return self.combine(frame, self.member_predictions(frame))

    def scores(self, frame) -> np.ndarray:
        return self.predict(frame).scores

    @staticmethod
    def save(directory: str, member_dirs: dict, weights: dict, normalization: dict, locales=None,
             classifier=None) -> None:
        """Record an ensemble of the rankers in `member_dirs` ({name: directory relative to
        `directory`}) with these weights and normalization (and `locales`, when it scores only
        those; `classifier`, the member giving the probabilities no weighted member gives)."""
        locales = normalize_locales(locales)
        files.write_json(os.path.join(directory, RANKER_FILE), {
            "kind": EnsembleRanker.kind, "members": dict(member_dirs), "weights": weights,
            "normalization": {n: list(v) for n, v in normalization.items()},
            **({LOCALES_KEY: list(locales)} if locales else {}),
            **({CLASSIFIER_KEY: classifier} if classifier else {})})

    @classmethod
    def load(cls, directory: str, batch_size: int = 128) -> "EnsembleRanker":
        saved = files.read_json(os.path.join(directory, RANKER_FILE))
        members = {name: load_ranker(os.path.join(directory, path), batch_size)
                   for name, path in saved["members"].items()}
        return cls(members, saved["weights"], {n: tuple(v) for n, v in saved["normalization"].items()},
                   saved.get(LOCALES_KEY), saved.get(CLASSIFIER_KEY))
