"""The ESCI sample for bench/quality.py: long-list folds, templates, the peer's token ids."""

import dataclasses

import numpy as np
import pandas as pd

from esci_tf.labels import GAINS


@dataclasses.dataclass
class QualityData:
    """The sample's pairs (task-1 rows), their long-list folds, templates and the peer's token ids."""

    frame: pd.DataFrame  # merged (reader.load_esci), one row per pair
    folds: np.ndarray  # [N] fold of long-list query rows, -1 for short-list rows (train only)
    num_folds: int
    templates: dict  # name ("plain" / "entities") -> esci_tf.preprocessing.template.TemplateSettings
    encoded: dict  # "plain" -> {token_ids, segment_ids, padding_mask} (the peer reads these ids)
    products: pd.DataFrame = None  # the sample's products table

    @property
    def gains(self) -> np.ndarray:
        return GAINS[self.frame["label"].to_numpy()]

    @property
    def query_ids(self) -> np.ndarray:
        return self.frame["query_id"].to_numpy()


def long_list_folds(frame: pd.DataFrame, num_folds: int, seed: int, min_list_size: int = 20) -> np.ndarray:
    """Fold (0..num_folds-1) of each row of a query with >= min_list_size products, grouped by
    query (esci_tf.data.splits.assign_folds); -1 for the rows of shorter lists."""
    from esci_tf.data.splits import assign_folds

    sizes = frame.groupby("query_id")["query_id"].transform("size").to_numpy()
    is_long = sizes >= min_list_size
    num_long = frame.loc[is_long, "query_id"].nunique()
    if num_long < num_folds:
        raise ValueError(f"--folds={num_folds} but only {num_long} queries have >= {min_list_size} products")
    folds = np.full(len(frame), -1, np.int32)
    folds[is_long] = assign_folds(frame[is_long], num_folds, seed)
    return folds


def fold_rows(folds: np.ndarray, fold: int) -> tuple:
    """(train row indices, eval row indices) of one fold: eval = that fold's long-list rows,
    train = every other row (short lists always train)."""
    folds = np.asarray(folds)
    return np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)


def load_quality_data(data_dir, num_folds: int, fold_seed: int, max_length: int,
                      min_list_size: int = 20, templates=("plain",)) -> QualityData:
    """Task-1 pairs of the sample, folds, the templates ("plain": the paper template;
    "entities": the same with esci_tf's catalogue entity markers) and the plain template's
    token ids (esci_tf's FrameEncoder on the MiniLM vocabulary)."""
    from bench.models import ours_preprocessor
    from bench.sample import sample_paths
    from esci_tf.data.reader import load_esci, read_table
    from esci_tf.preprocessing.template import TemplateSettings
    from esci_tf.preprocessing.frame_encoder import FrameEncoder

    examples, products = sample_paths(data_dir)
    products_table = read_table(products)
    frame, _ = load_esci(examples, products, task="1", products_table=products_table)
    frame = frame.reset_index(drop=True)
    folds = long_list_folds(frame, num_folds, fold_seed, min_list_size)
    settings = {}
    for name in templates:
        if name not in ("plain", "entities"):
            raise ValueError(f"unknown template {name!r}")
        settings[name] = TemplateSettings.for_catalog(products_table, entity_markers=name == "entities")
    plain = FrameEncoder(ours_preprocessor(max_length), settings.get("plain", TemplateSettings()))
    return QualityData(frame, folds, num_folds, settings, {"plain": plain.features(frame)}, products_table)


def take(features: dict, rows) -> dict:
    return {key: value[rows] for key, value in features.items()}
