"""ESCI files -> TFRecord shards: load and validate, format pairs, tokenize, write, check.

Everything text-related goes through the project's own definitions: esci_tf.data (reading,
cleaning, template, entity markers, folds) and esci_tf.preprocessing.PairPreprocessor.
"""

import os

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from esci_tf.data.entities import CatalogEntityTagger
from esci_tf.data.reader import load_esci, read_table
from esci_tf.data.splits import assign_folds
from esci_tf.data.template import format_pairs
from esci_tf.data.validation import SPLITS
from esci_tf.labels import one_hot
from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
from esci_tf.preprocessing.encode import encode_in_batches
from tfrecords import summary as summary_lib
from tfrecords import writer
from tfrecords.shards import check_shard

DEFAULT_TOKENIZER = "xlm_roberta"  # no path: the embedded demo SentencePiece vocabulary
TEST_FOLD = -1  # fold number of rows outside the training split
ENCODE_BATCH = 512


def parse_tokenizer_flag(value: str) -> tuple:
    """"BACKBONE[:PATH]" -> (backbone, path or None); PATH may itself hold colons (gs://...)."""
    backbone, _, path = value.partition(":")
    if not backbone:
        raise ValueError(f"--tokenizer must be BACKBONE[:PATH], got {value!r}")
    return backbone, (path or None)


def encode_pairs(preprocessor, queries, product_texts, progress=None) -> tuple:
    """PairPreprocessor outputs as numpy arrays [N, max_length], and tokens cut per pair [N]."""
    return encode_in_batches(preprocessor, queries, product_texts, ENCODE_BATCH, progress)


def _check_settings(max_length, num_folds, num_shards, label_smoothing):
    if max_length < 5:
        raise ValueError(f"--max_length must be at least 5, got {max_length}")
    if num_folds < 1:
        raise ValueError(f"--num_folds must be at least 1, got {num_folds}")
    if num_shards < 1:
        raise ValueError(f"--num_shards must be at least 1, got {num_shards}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"--label_smoothing must be in [0, 1), got {label_smoothing}")


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


def _remove_previous_build(output_dir: str):
    """A rebuild must not leave shards of a split it no longer has, nor an outdated summary."""
    for split in SPLITS:
        writer.remove_split_shards(output_dir, split)
    summary_path = os.path.join(output_dir, summary_lib.SUMMARY_FILE)
    if tf.io.gfile.exists(summary_path):
        tf.io.gfile.remove(summary_path)


def build_tfrecords(
    examples: str,
    products: str,
    output_dir: str,
    sources: str | None = None,
    tokenizer: str = DEFAULT_TOKENIZER,
    max_length: int = 128,
    task: str = "1",
    num_folds: int = 5,
    num_shards: int = 8,
    entity_markers: bool = False,
    field_style: str = "text",
    prompt_tokens: int = 0,
    on_bad_rows: str = "raise",
    label_smoothing: float = 0.0,
    seed: int = 0,
    show_progress: bool = True,
    preprocessor=None,
) -> dict:
    """Builds <output_dir>/<split>-NNNNN-of-NNNNN.tfrecord.gz per split and summary.json.

    Training rows get folds 0..num_folds-1 (grouped by query); other splits get fold -1.
    Returns the summary (also written to output_dir/summary.json). `preprocessor`: an existing
    PairPreprocessor to reuse (it must match `tokenizer`'s backbone and max_length), which
    saves building and tracing a new one.
    """
    _check_settings(max_length, num_folds, num_shards, label_smoothing)
    backbone, tokenizer_path = parse_tokenizer_flag(tokenizer)
    if preprocessor is None:
        preprocessor = PairPreprocessor(load_tokenizer(backbone, tokenizer_path), backbone, max_length)
    elif (preprocessor.backbone, preprocessor.max_length) != (backbone, max_length):
        raise ValueError(
            f"the given preprocessor is ({preprocessor.backbone}, max_length {preprocessor.max_length}); "
            f"--tokenizer {tokenizer} --max_length {max_length} asks for ({backbone}, {max_length})"
        )
    merged, report = load_esci(examples, products, sources, task=task, on_bad_rows=on_bad_rows)
    # Gazetteers from the whole products file, as trainers build them for prediction too.
    tagger = CatalogEntityTagger.from_products(read_table(products)) if entity_markers else None
    tf.io.gfile.makedirs(output_dir)
    _remove_previous_build(output_dir)

    frames, split_stats = {}, {}
    for split in sorted(merged["split"].unique(), key=lambda s: (s != "train", s)):
        frame = merged[merged["split"] == split].reset_index(drop=True)
        queries, product_texts = format_pairs(
            frame, tagger=tagger, field_style=field_style, prompt_tokens=prompt_tokens
        )
        with tqdm(total=len(frame), desc=f"tokenize {split}", unit="pair", disable=not show_progress) as bar:
            features, tokens_cut = encode_pairs(preprocessor, list(queries), list(product_texts), bar)
        folds = assign_folds(frame, num_folds, seed) if split == "train" else np.full(len(frame), TEST_FOLD)
        columns = dict(
            features,
            labels=one_hot(frame["label"].to_numpy(), label_smoothing),
            query_id=frame["query_id"].to_numpy(np.int64),
            example_id=frame["example_id"].to_numpy(np.int64),
            fold=np.asarray(folds, np.int64),
            product_id=frame["product_id"].to_numpy(object),
            locale=frame["product_locale"].to_numpy(object),
        )
        shard_counts = _write_checked(output_dir, split, columns, num_shards, max_length, show_progress)
        frames[split] = frame
        split_stats[split] = summary_lib.split_summary(frame, tokens_cut, shard_counts)

    settings = dict(
        examples=os.fspath(examples), products=os.fspath(products),
        sources=None if sources is None else os.fspath(sources), task=str(task),
        tokenizer=tokenizer, backbone=backbone, max_length=max_length,
        vocabulary_size=preprocessor.vocabulary_size, base_vocabulary_size=preprocessor.base_vocabulary_size,
        num_folds=num_folds, seed=seed, num_shards=num_shards, entity_markers=entity_markers,
        field_style=field_style, prompt_tokens=prompt_tokens, on_bad_rows=on_bad_rows,
        label_smoothing=label_smoothing,
    )
    summary = {
        "settings": settings,
        "total": summary_lib.overall_summary(frames),
        "splits": split_stats,
        "dropped": report.to_dict(),
    }
    summary_lib.write_summary(summary, output_dir)
    return summary
