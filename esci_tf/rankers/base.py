"""Ranker directories: the Ranker protocol, predictions, locales and the kind a directory records
(esci_tf.rankers.registry loads any of them by that kind).

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
import typing

import numpy as np

from esci_tf import files
from esci_tf.errors import DataError
from esci_tf.data.locales import canonical
from esci_tf.labels import ranking_score

RANKER_FILE = "ranker.json"
ALL_LOCALES = "all"  # an ensemble's weights for every locale without its own
LOCALES_KEY = "locales"  # in ranker.json, and in a trainers.fit run's run_settings.json


@dataclasses.dataclass
class Prediction:
    """A ranker's output for a frame: scores [N] and, when it classifies, probabilities [N, 4]."""

    scores: np.ndarray
    probabilities: np.ndarray | None = None


@typing.runtime_checkable
class Ranker(typing.Protocol):
    """What every ranker class of esci_tf.rankers.registry.RANKERS has: `kind` (its ranker.json
    kind), `scores(frame)` -> [N], `.locales` (None: every locale) and the classmethod
    `load(directory, batch_size)`; each writes its own directory with `save`, except the
    cross-encoder, whose directory is a trainers.fit run's output. Rankers that classify also have
    `probabilities(frame)` -> [N, 4]; bags and ensembles `predict(frame)`."""

    kind: str
    locales: tuple | None

    def scores(self, frame) -> np.ndarray: ...

    @classmethod
    def load(cls, directory: str, batch_size: int = 128): ...


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


def covered_locales(weights: dict, member_locales: dict) -> tuple | None:
    """The locales an ensemble with these weights scores (None: every locale): those a member with
    an "all" weight covers, and those with their own weights; {member: its locales or None}."""
    weighted = [member_locales[n] for n, w in weights[ALL_LOCALES].items() if w]
    everywhere = any_locales(weighted)
    if weighted and everywhere is None:
        return None
    return normalize_locales([*(everywhere or ()), *(locale for locale in weights if locale != ALL_LOCALES)]) or ()


def locales_record(ranker) -> dict:
    """What a ranker.json records of the ranker's locales: {"locales": [...]}, or nothing when it
    covers every locale."""
    locales = getattr(ranker, "locales", None)
    return {} if locales is None else {LOCALES_KEY: list(locales)}


def check_locales(ranker, frame) -> None:
    """DataError naming the first locale of `frame` the ranker was not trained for, and its model
    directory; nothing when it covers every row's locale."""
    directory = getattr(ranker, "directory", None)
    check_frame_locales(getattr(ranker, "locales", None), frame,
                        f"the model in {directory}" if directory else f"this {type(ranker).__name__}")


def check_frame_locales(locales, frame, where: str) -> None:
    """check_locales for a model (`where`: its name in the message) trained for `locales` (None:
    every locale)."""
    if locales is None or not len(frame) or "product_locale" not in frame:
        return
    for locale in frame["product_locale"].unique():
        if not covers(locales, locale):
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


def classifies(ranker) -> bool:
    """Whether `ranker` gives class probabilities for every pair: a ranker with `probabilities`,
    or one whose `classifies` says so (bags, ensembles)."""
    flag = getattr(ranker, "classifies", None)
    return bool(flag) if flag is not None else hasattr(ranker, "probabilities")


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
        used = {n for weights in saved["weights"].values() for n, w in weights.items() if w}
        return covered_locales(saved["weights"], {name: ranker_locales(os.path.join(directory, path))
                                                  for name, path in saved["members"].items() if name in used})
    return None
