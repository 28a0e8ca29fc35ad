"""The one TFRecord builder: merged ESCI frames, one per split, -> checked shards + summary.json.

`build_shards` takes frames already read and validated (esci_tf.data.reader.load_esci, or a
training run's own train/eval split) and a FrameEncoder (template + PairPreprocessor); it
formats and tokenizes each split, writes its shards (tfrecords.writer), reads every shard back
and writes summary.json. Training rows get query-grouped folds 0..num_folds-1 (or the frame's
own "fold" column); rows of other splits get fold -1. Targets are the one-hot labels
(optionally smoothed), or the soft labels of the frame's TARGET_COLUMNS when it has them
(self-distillation and pseudo labels).
"""

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from esci_tf import files
from esci_tf.data.errors import FlagError
from esci_tf.data.splits import assign_folds
from esci_tf.data.validation import SPLITS, DropReport
from esci_tf.labels import SHORT_LABELS, one_hot
from tfrecords import summary as summary_lib
from tfrecords import writer
from tfrecords.shards import check_shard

TEST_FOLD = -1  # fold number of rows outside the training split
TARGET_COLUMNS = tuple(f"target_{s}" for s in SHORT_LABELS)  # optional soft labels of a frame


def check_build_settings(max_length: int, num_folds: int, num_shards: int, label_smoothing: float) -> None:
    """FlagError (a ValueError) naming the flag of a setting no build can use."""
    if max_length < 5:
        raise FlagError(f"--max_length must be at least 5, got {max_length}")
    if num_folds < 1:
        raise FlagError(f"--num_folds must be at least 1, got {num_folds}")
    if num_shards < 1:
        raise FlagError(f"--num_shards must be at least 1, got {num_shards}")
    if not 0.0 <= label_smoothing < 1.0:
        raise FlagError(f"--label_smoothing must be in [0, 1), got {label_smoothing}")


def shards_for(split: str, frame, num_shards: int) -> int:
    """num_shards capped at the split's query count (a query's rows share one shard, so more
    shards would be empty files); the cap is logged."""
    queries = int(frame["query_id"].nunique())
    if num_shards <= max(queries, 1):
        return num_shards
    logging.warning("split %s has %d queries: writing %d shards instead of --num_shards=%d (a query's rows "
                    "stay in one shard)", split, queries, max(queries, 1), num_shards)
    return max(queries, 1)


def targets_of(frame, label_smoothing: float = 0.0) -> np.ndarray:
    """[N, 4] float32 training targets of a frame: its soft labels, or its (smoothed) labels."""
    if all(column in frame.columns for column in TARGET_COLUMNS):
        targets = frame[list(TARGET_COLUMNS)].to_numpy(np.float32)
        if label_smoothing:
            targets = targets * (1.0 - label_smoothing) + label_smoothing / len(TARGET_COLUMNS)
        return targets.astype(np.float32)
    return one_hot(frame["label"].to_numpy(), label_smoothing)


def _folds(frame, split: str, num_folds: int, seed: int) -> np.ndarray:
    if split != "train":
        return np.full(len(frame), TEST_FOLD, np.int64)
    if "fold" in frame.columns:
        return frame["fold"].to_numpy(np.int64)
    queries = frame["query_id"].nunique()
    if queries < num_folds:
        raise FlagError(f"--num_folds={num_folds} is more than the {queries} queries of the train split")
    return np.asarray(assign_folds(frame, num_folds, seed), np.int64)


def _write_checked(output_dir, split, columns, num_shards, max_length, show_progress) -> dict:
    """Writes one split, then reads every shard back; returns {path: record count}."""
    with tqdm(total=len(columns["query_id"]), desc=f"write {split}", unit="pair", disable=not show_progress) as bar:
        paths = writer.write_split(output_dir, split, columns, num_shards, progress=bar)
    expected = np.bincount(writer.assign_shards(columns["query_id"], num_shards), minlength=num_shards)
    counts = {}
    for path, want in zip(paths, expected):
        counts[path] = check_shard(path, max_length)
        if counts[path] != want:
            raise RuntimeError(f"{path}: wrote {want} records but read back {counts[path]}")
    return counts


def remove_previous_build(output_dir: str) -> None:
    """A rebuild must not leave shards of a split it no longer has, an outdated summary, nor the
    temporary files of a killed build."""
    files.remove_temporaries(output_dir)
    for split in SPLITS:
        writer.remove_split_shards(output_dir, split)
    path = f"{output_dir.rstrip('/')}/{summary_lib.SUMMARY_FILE}"
    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def build_shards(frames: dict, output_dir: str, encoder, num_shards: int = 8, num_folds: int = 1,
                 seed: int = 0, label_smoothing: float = 0.0, settings: dict | None = None,
                 dropped: dict | None = None, show_progress: bool = True) -> dict:
    """Writes <output_dir>/<split>-NNNNN-of-NNNNN.tfrecord.gz for each {split: frame} and
    summary.json; returns the summary. `settings` (the caller's: file names, task, flags) and
    `dropped` (the reader's DropReport.to_dict()) go into the summary as they are."""
    check_build_settings(encoder.max_length, num_folds, num_shards, label_smoothing)
    tf.io.gfile.makedirs(output_dir)
    remove_previous_build(output_dir)
    preprocessor = encoder.preprocessor
    split_stats = {}
    for split, frame in frames.items():
        with tqdm(total=len(frame), desc=f"tokenize {split}", unit="pair", disable=not show_progress) as bar:
            features, tokens_cut = encoder.encode(frame, progress=bar)
        columns = dict(
            features,
            labels=targets_of(frame, label_smoothing),
            query_id=frame["query_id"].to_numpy(np.int64),
            example_id=frame["example_id"].to_numpy(np.int64),
            fold=_folds(frame, split, num_folds, seed),
            product_id=frame["product_id"].to_numpy(object),
            locale=frame["product_locale"].to_numpy(object),
        )
        shard_counts = _write_checked(output_dir, split, columns, shards_for(split, frame, num_shards),
                                      encoder.max_length, show_progress)
        split_stats[split] = summary_lib.split_summary(frame, tokens_cut, shard_counts)
    all_settings = dict(settings or {})
    all_settings.update(
        backbone=preprocessor.backbone, max_length=encoder.max_length,
        vocabulary_size=preprocessor.vocabulary_size, base_vocabulary_size=preprocessor.base_vocabulary_size,
        num_folds=num_folds, seed=seed, num_shards=num_shards, label_smoothing=label_smoothing,
        field_style=encoder.template.field_style, prompt_tokens=encoder.template.prompt_tokens,
        entity_markers=encoder.template.entity_markers,
    )
    summary = {
        "settings": all_settings,
        "total": summary_lib.overall_summary(frames),
        "splits": split_stats,
        "dropped": dropped or DropReport().to_dict(),
    }
    summary_lib.write_summary(summary, output_dir)
    return summary
