"""The one TFRecord builder: merged ESCI frames, one per split, -> checked shards + summary.json.

`build_shards` takes frames already read and validated (esci_tf.data.reader.load_esci, or a
training run's own train/eval split; or load_esci_keys' frames with a ProductStore holding
their text) and a FrameEncoder (template + PairPreprocessor); it cuts each split into shard
jobs (esci_tf.records.shard_jobs: format, tokenize and write a batch at a time, then read the shard
back), runs them in one or more processes and writes summary.json last. Training rows get query-grouped folds 0..num_folds-1 (or the frame's
own "fold" column); rows of other splits get fold -1. Targets are the one-hot labels
(optionally smoothed), or the soft labels of the frame's TARGET_COLUMNS when it has them
(self-distillation and pseudo labels).
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging
from tqdm import tqdm

from esci_tf import files
from esci_tf.errors import FlagError
from esci_tf.data.splits import assign_folds
from esci_tf.data.validation import PRODUCT_TEXT_COLUMNS, SPLITS, DropReport
from esci_tf.labels import SHORT_LABELS, one_hot
from esci_tf.records import summary as summary_lib
from esci_tf.records import writer
from esci_tf.records import schema
from esci_tf.records.shard_jobs import ShardJob, auto_workers, run_jobs

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


def remove_previous_build(output_dir: str, keep=()) -> None:
    """A rebuild must not leave shards of a split it no longer has, an outdated summary, nor the
    temporary files of a killed build (`keep`: this build's own temporaries)."""
    files.remove_temporaries(output_dir, keep)
    for split in SPLITS:
        writer.remove_split_shards(output_dir, split)
    path = f"{output_dir.rstrip('/')}/{summary_lib.SUMMARY_FILE}"
    if tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)


def _split_jobs(split, frame, output_dir, num_shards, num_folds, seed, label_smoothing, store):
    """The ShardJobs of one split, in shard order, built one at a time."""
    from esci_tf.preprocessing.template import frame_fields

    columns = dict(
        labels=targets_of(frame, label_smoothing),
        query_id=frame["query_id"].to_numpy(np.int64),
        example_id=frame["example_id"].to_numpy(np.int64),
        fold=_folds(frame, split, num_folds, seed),
        product_id=frame["product_id"].to_numpy(object),
        locale=frame["product_locale"].to_numpy(object),
        query=frame["query"].to_numpy(object),
    )
    shards = shards_for(split, frame, num_shards)
    for shard, rows in enumerate(writer.shard_rows(columns["query_id"], shards)):
        path = os.path.join(output_dir, schema.shard_name(split, shard, shards))
        job_columns = {key: values[rows] for key, values in columns.items()}
        if store is None:
            fields = frame_fields(frame.iloc[rows])
            text = {name: fields[name] for name in PRODUCT_TEXT_COLUMNS}
            job_columns["query"] = fields["query"]
            yield ShardJob(path, job_columns, text=text), rows
        else:
            spans = store.spans(frame["product_row"].to_numpy(np.int64)[rows])
            yield ShardJob(path, job_columns, store_path=store.path, spans=spans), rows


def build_shards(frames: dict, output_dir: str, encoder, num_shards: int = 8, num_folds: int = 1,
                 seed: int = 0, label_smoothing: float = 0.0, settings: dict | None = None,
                 dropped: dict | None = None, show_progress: bool = True, store=None, workers: int = 1) -> dict:
    """Writes <output_dir>/<split>-NNNNN-of-NNNNN.tfrecord.gz for each {split: frame} and
    summary.json (last); returns the summary. `settings` (the caller's: file names, task, flags)
    and `dropped` (the reader's DropReport.to_dict()) go into the summary as they are.

    Frames hold the product text columns, or (with `store`, an esci_tf.data.product_store
    ProductStore) a `product_row` column whose text the store holds. Each shard is one job
    (esci_tf.records.shard_jobs) encoded and written a batch at a time, by `workers` processes (0: the
    machine's cores, one per shard_jobs.PAIRS_PER_WORKER pairs at most); the output is the same
    bytes for any `workers`.
    """
    from esci_tf.preprocessing.template import check_frame, check_locales

    check_build_settings(encoder.max_length, num_folds, num_shards, label_smoothing)
    for frame in frames.values():
        if store is None:
            check_frame(frame)  # the text columns are in the frame
        else:
            check_locales(frame)
    tf.io.gfile.makedirs(output_dir)
    remove_previous_build(output_dir, keep=() if store is None else (store.path,))
    preprocessor = encoder.preprocessor
    rows_of = {}  # shard path -> (split, rows of the split's frame in the shard)

    def jobs():
        for split, frame in frames.items():
            for job, rows in _split_jobs(split, frame, output_dir, num_shards, num_folds, seed, label_smoothing,
                                         store):
                rows_of[job.path] = (split, rows)
                yield job

    cut = {split: np.zeros(len(frame), np.int32) for split, frame in frames.items()}
    counts = {split: {} for split in frames}
    jobs_total = sum(min(num_shards, max(int(frame["query_id"].nunique()), 1)) for frame in frames.values())
    pairs = sum(map(len, frames.values()))
    workers = max(1, min(workers or auto_workers(pairs), jobs_total))
    with tqdm(total=pairs, desc=f"encode and write ({workers} process{'es' if workers > 1 else ''})", unit="pair",
              disable=not show_progress) as bar:
        for job, tokens_cut in run_jobs(jobs(), encoder, workers):
            split, rows = rows_of.pop(job.path)
            cut[split][rows] = tokens_cut
            counts[split][job.path] = job.num_rows
            bar.update(job.num_rows)
    split_stats = {}
    for split, frame in frames.items():
        split_stats[split] = summary_lib.split_summary(frame, cut[split], counts[split])
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
