"""Ranker directories: what `load_ranker` finds in a model directory.

A ranker scores the (query, product) pairs of a merged ESCI frame (esci_tf.data.reader.load_esci):
`scores(frame)` -> [N] (higher ranks first), and `probabilities(frame)` -> [N, 4] for rankers that
classify. A trainers.fit --output_dir is a cross-encoder ranker (best_model.keras +
preprocessing.json); every other ranker directory holds a ranker.json whose "kind" names its class
(bm25, zero_shot, bi_encoder, bag, ensemble), so trainers.predict and trainers.export take any of them.

Locales. A ranker trained on some locales' pairs only (--locales) scores only those: its
`.locales` is a tuple of them (None: every locale), read from its directory (`ranker_locales`),
and `predict` refuses a frame with rows of another locale (one line naming the locale and the
model directory). A bag covers the locales every one of its models covers; an ensemble covers
those some weighted member covers, and gives each member only its locales' rows.
"""

import dataclasses
import os

import numpy as np

from esci_tf import files
from esci_tf.errors import DataError
from esci_tf.data.locales import canonical
from esci_tf.labels import ranking_score

RANKER_FILE = "ranker.json"
LOCALES_KEY = "locales"  # in ranker.json, and in a trainers.fit run's run_settings.json


@dataclasses.dataclass
class Prediction:
    """A ranker's output for a frame: scores [N] and, when it classifies, probabilities [N, 4]."""

    scores: np.ndarray
    probabilities: np.ndarray | None = None


def normalize_locales(locales) -> tuple | None:
    """Locales as the sorted tuple a ranker records (esci_tf.data.locales.canonical); None or
    empty: every locale (None)."""
    return canonical(locales) or None


def covers(locales, locale) -> bool:
    """Whether a ranker with these `.locales` may score rows of `locale`."""
    return locales is None or str(locale) in locales


def common_locales(member_locales) -> tuple | None:
    """The locales every one of these rankers covers (a bag's)."""
    known = [set(locales) for locales in member_locales if locales is not None]
    return tuple(sorted(set.intersection(*known))) if known else None


def any_locales(member_locales) -> tuple | None:
    """The locales one of these rankers covers at least (an ensemble's); None if one covers all."""
    member_locales = list(member_locales)
    if not member_locales or any(locales is None for locales in member_locales):
        return None
    return tuple(sorted(set().union(*member_locales)))


def locales_record(ranker) -> dict:
    """What a ranker.json records of the ranker's locales: {"locales": [...]}, or nothing when it
    covers every locale."""
    locales = getattr(ranker, "locales", None)
    return {} if locales is None else {LOCALES_KEY: list(locales)}


def check_locales(ranker, frame) -> None:
    """DataError naming the first locale of `frame` the ranker was not trained for, and its model
    directory; nothing when it covers every row's locale."""
    locales = getattr(ranker, "locales", None)
    if locales is None or not len(frame) or "product_locale" not in frame:
        return
    for locale in frame["product_locale"].unique():
        if not covers(locales, locale):
            directory = getattr(ranker, "directory", None)
            where = f"the model in {directory}" if directory else f"this {type(ranker).__name__}"
            raise DataError(f"{where} was trained for locale(s) {','.join(locales)} only and cannot "
                            f"score rows of locale {locale!r}; give --locales={','.join(locales)} to score only "
                            "its locales' rows")


def predict(ranker, frame) -> Prediction:
    """Scores and (if any) class probabilities of any ranker; DataError (check_locales) for rows
    of a locale it was not trained for."""
    check_locales(ranker, frame)
    if hasattr(ranker, "predict"):  # bags and ensembles
        return ranker.predict(frame)
    if hasattr(ranker, "probabilities"):
        probabilities = ranker.probabilities(frame)
        return Prediction(ranking_score(probabilities), probabilities)
    return Prediction(np.asarray(ranker.scores(frame), np.float64))


def predict_covered(ranker, frame) -> Prediction:
    """`predict` on the rows of the ranker's locales only: NaN scores (and probabilities, when it
    classifies) on the other rows; probabilities None when no row is covered."""
    locales = getattr(ranker, "locales", None)
    if locales is None:
        return predict(ranker, frame)
    rows = frame["product_locale"].isin(locales).to_numpy()
    scores, probabilities = np.full(len(frame), np.nan), None
    if rows.any():
        part = predict(ranker, frame[rows])
        scores[rows] = part.scores
        if part.probabilities is not None:
            probabilities = np.full((len(frame), part.probabilities.shape[1]), np.nan)
            probabilities[rows] = part.probabilities
    return Prediction(scores, probabilities)


def ranker_kind(directory: str) -> str:
    """The kind of ranker saved in `directory` ("cross_encoder" for a trainers.fit run)."""
    saved = files.read_json(os.path.join(directory, RANKER_FILE), missing_ok=True)
    return "cross_encoder" if saved is None else saved["kind"]


def ranker_locales(directory: str) -> tuple[str, ...] | None:
    """The locales the ranker in `directory` was trained for (None: every locale): a trainers.fit
    run's recorded --locales (run_settings.json; a run that recorded none covers all), the
    "locales" of ranker.json for other kinds; a bag without its own key covers what all its
    models cover, an ensemble what one of its weighted members covers."""
    saved = files.read_json(os.path.join(directory, RANKER_FILE), missing_ok=True)
    if saved is None:
        from esci_tf.training.run_settings import SETTINGS_FILE

        settings = files.read_json(os.path.join(directory, SETTINGS_FILE), missing_ok=True) or {}
        return normalize_locales(settings.get(LOCALES_KEY))
    if LOCALES_KEY in saved:
        return normalize_locales(saved[LOCALES_KEY])
    if saved["kind"] == "bag":
        return common_locales(ranker_locales(os.path.join(directory, d)) for d in saved["members"])
    if saved["kind"] == "ensemble":
        from esci_tf.rankers.ensemble import covered_locales

        used = {n for weights in saved["weights"].values() for n, w in weights.items() if w}
        return covered_locales(saved["weights"], {name: ranker_locales(os.path.join(directory, path))
                                                  for name, path in saved["members"].items() if name in used})
    return None


def load_ranker(directory: str, batch_size: int = 128):
    """The ranker saved in `directory` (its `.directory` set to it); FileNotFoundError naming
    --model_dir when there is none."""
    ranker = _load(directory, batch_size)
    ranker.directory = directory
    return ranker


def _load(directory: str, batch_size: int):
    kind = ranker_kind(directory)
    if kind == "cross_encoder":
        from esci_tf.rankers.cross_encoder import CrossEncoderRanker

        return CrossEncoderRanker.load(directory, batch_size)
    if kind == "bm25":
        from esci_tf.rankers.bm25 import BM25Ranker

        return BM25Ranker.load(directory)
    if kind == "zero_shot":
        from esci_tf.rankers.zero_shot import ZeroShotRanker

        return ZeroShotRanker.load(directory, batch_size)
    if kind == "bi_encoder":
        from esci_tf.rankers.bi_encoder import BiEncoderRanker

        return BiEncoderRanker.load(directory, batch_size)
    if kind in ("bag", "ensemble"):
        from esci_tf.rankers.ensemble import BagRanker, EnsembleRanker

        return (BagRanker if kind == "bag" else EnsembleRanker).load(directory, batch_size)
    raise ValueError(f"{directory}/{RANKER_FILE}: unknown ranker kind {kind!r}")
