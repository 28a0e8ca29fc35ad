"""The ESCI sample for bench/quality.py: long-list folds, templates, token ids, lists."""

import dataclasses

import numpy as np
import pandas as pd

from esci_tf.labels import GAINS


@dataclasses.dataclass
class QualityData:
    """The sample's pairs (task-1 rows), their long-list folds and encoded variants."""

    frame: pd.DataFrame  # merged (reader.load_esci), one row per pair
    folds: np.ndarray  # [N] fold of long-list query rows, -1 for short-list rows (train only)
    num_folds: int
    encoded: dict  # template name ("plain" / "entities") -> {token_ids, segment_ids, padding_mask}

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
    """Task-1 pairs of the sample, folds, and token ids for each template ("plain": the paper
    template; "entities": the same with esci_tf's catalogue entity markers)."""
    from bench.sample import sample_paths
    from bench.models import ours_preprocessor
    from esci_tf.data.entities import CatalogEntityTagger
    from esci_tf.data.reader import load_esci, read_table
    from esci_tf.data.template import format_pairs
    from esci_tf.preprocessing import preprocess_pairs

    examples, products = sample_paths(data_dir)
    frame, _ = load_esci(examples, products, task="1")
    frame = frame.reset_index(drop=True)
    folds = long_list_folds(frame, num_folds, fold_seed, min_list_size)
    preprocessor = ours_preprocessor(max_length)
    encoded = {}
    for name in templates:
        if name == "plain":
            tagger = None
        elif name == "entities":
            tagger = CatalogEntityTagger.from_products(read_table(products))
        else:
            raise ValueError(f"unknown template {name!r}")
        queries, texts = format_pairs(frame, tagger=tagger)
        encoded[name], _ = preprocess_pairs(preprocessor, queries, texts)
    return QualityData(frame, folds, num_folds, encoded)


def take(features: dict, rows) -> dict:
    return {key: value[rows] for key, value in features.items()}


def query_lists(features: dict, targets: np.ndarray, query_ids: np.ndarray, list_size: int) -> tuple:
    """Listwise arrays: features [num_lists, list_size, T] plus "list_mask", targets
    [num_lists, list_size, 4]; each query's rows in file order, cut into chunks of list_size,
    the last chunk padded (mask False, token ids 0)."""
    if list_size < 2:
        raise ValueError(f"list_size must be >= 2, got {list_size}")
    chunks = []
    for query_id in dict.fromkeys(np.asarray(query_ids).tolist()):
        rows = np.flatnonzero(query_ids == query_id)
        chunks.extend(rows[i:i + list_size] for i in range(0, len(rows), list_size))
    num_lists = len(chunks)
    out = {key: np.zeros((num_lists, list_size) + value.shape[1:], value.dtype) for key, value in features.items()}
    out["list_mask"] = np.zeros((num_lists, list_size), bool)
    list_targets = np.zeros((num_lists, list_size, targets.shape[1]), np.float32)
    for i, rows in enumerate(chunks):
        n = len(rows)
        for key, value in features.items():
            out[key][i, :n] = value[rows]
        out["list_mask"][i, :n] = True
        list_targets[i, :n] = targets[rows]
    return out, list_targets
