"""The TFRecords a run trains and evaluates on, built once into <output_dir>/data.

A run's data comes from prebuilt shards (--train_tfrecords/--eval_tfrecords), from the official
files (--examples/--products: read and validated once, split into a query-grouped eval slice
and the rest), from generated data (--synthetic_queries), or, for library callers such as the
recipe, from frames they pass in (`SplitFrames`). Frames become shards through
esci_tf.records.builder.build_shards; <output_dir>/data/data_info.json (written last) records what
they were built from: the content of the inputs (`data_identity`: size and SHA-256 of each
file, or the frames' hash), every setting that changes the records, the tokenizer, and each
shard's size. A rerun with the same key and intact shards reuses them; anything else rebuilds
them, with a log line saying why.
"""

import dataclasses
import hashlib
import os

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import logging

from esci_tf import files
from esci_tf.errors import DataError
from esci_tf.preprocessing.template import TemplateSettings
from esci_tf.training.config import ConfigError, RunConfig, recorded
from esci_tf.training.run_lock import is_chief

DATA_DIR = "data"
DATA_INFO_FILE = "data_info.json"
EVAL_SPLIT_NAME = "test"  # the eval slice is written as the "test" split of the run's data


@dataclasses.dataclass
class RunData:
    """Where the run's TFRecords are, what went into them, and the template that formatted them."""

    train_pattern: str
    eval_pattern: str
    num_train: int
    num_eval: int
    info: dict
    template: TemplateSettings = dataclasses.field(default_factory=TemplateSettings)


@dataclasses.dataclass
class SplitFrames:
    """A run's train and eval pairs as merged ESCI frames (reader.load_esci columns; optional
    soft labels in esci_tf.records.builder.TARGET_COLUMNS), the template they are formatted with, and
    what to record about them."""

    train: pd.DataFrame
    eval: pd.DataFrame
    template: TemplateSettings
    info: dict = dataclasses.field(default_factory=dict)

    def fingerprint(self) -> str:
        """A hash of the frames' contents and the template (the data cache key)."""
        digest = hashlib.sha256()
        for frame in (self.train, self.eval):
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
            digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(repr(self.template).encode())
        return digest.hexdigest()


def split_frame(config: RunConfig, frame: pd.DataFrame):
    """(train, eval, info): the query-grouped eval slice and the rest, leaked queries removed; an
    eval slice of fewer than evaluation.MIN_QUERIES queries is refused (ConfigError naming the flag)."""
    from esci_tf.data import splits
    from esci_tf.training import evaluation

    data = config.data
    if data.eval_split == "test":
        is_eval = (frame["split"] == "test").to_numpy()
        info = {"eval_split": "official test rows"}
    else:
        num_folds = max(2, int(round(1.0 / data.eval_fraction)))
        num_queries = frame["query_id"].nunique()
        if num_queries < num_folds:
            raise ConfigError(f"--eval_fraction={data.eval_fraction}: the data holds {num_queries} queries, too few "
                              f"to hold out 1 in {num_folds}; give more queries")
        is_eval = np.asarray(splits.assign_folds(frame, num_folds, config.runtime.seed)) == 0
        info = {"eval_split": f"fold 0 of {num_folds} query-grouped folds (seed {config.runtime.seed})"}
    train, held_out = frame[~is_eval], frame[is_eval]
    flag = "--eval_split" if data.eval_split == "test" else "--eval_fraction"
    if train.empty or held_out.empty:
        raise ConfigError(f"{flag}: the split leaves {len(train)} training and {len(held_out)} eval pairs")
    evaluation.check_selection_size(held_out["query_id"].nunique(), len(held_out), flag)
    train, removed = splits.remove_leaked_queries(train, held_out)
    splits.check_no_leakage(train, held_out)
    info["train_pairs_removed_for_leakage"] = int(removed)
    return train.reset_index(drop=True), held_out.reset_index(drop=True), info


def load_split_frames(config: RunConfig, data_dir: str) -> SplitFrames:
    """The run's files (or generated data) read, validated and split once."""
    from esci_tf.data.locales import select_locales
    from esci_tf.data.reader import load_esci, read_table
    from esci_tf.data.synthetic import write_esci_files

    data = config.data
    examples, products = data.examples, data.products
    if data.synthetic_queries:
        examples, products = write_esci_files(data.synthetic_queries, config.runtime.seed, data_dir)
    products_table = read_table(products)
    frame, drop_report = load_esci(examples, products, task=data.task, on_bad_rows=data.on_bad_rows,
                                   products_table=products_table)
    if frame.empty:
        raise ConfigError(f"--examples={examples}: no pairs of task {data.task} in the file")
    frame = select_locales(frame, data.locales, examples)
    template = TemplateSettings.for_catalog(products_table, data.field_style, data.prompt_tokens,
                                            data.entity_markers)
    train, held_out, info = split_frame(config, frame)
    info["dropped_rows"] = drop_report.to_dict()
    if data.augment_examples is not None:
        train, info["augmentation"] = add_augmentation(config, train, held_out)
    return SplitFrames(train, held_out, template, info)


def add_augmentation(config: RunConfig, train: pd.DataFrame, held_out: pd.DataFrame) -> tuple:
    """(train with the translated pairs that may train beside it, their counts): translations of
    training queries only, never of an eval query (esci_tf.data.augmentation); eval is untouched."""
    from esci_tf.data import augmentation, splits
    from esci_tf.data.locales import keep_locales

    data = config.data
    translated, report = augmentation.load_augmentation(data.augment_examples, data.augment_products,
                                                        task=data.task, on_bad_rows=data.on_bad_rows)
    translated, other_locales = keep_locales(translated, data.locales)  # translations into other locales
    if other_locales:
        logging.info("augmentation: %d translated pairs of locales outside --locales=%s left out", other_locales,
                     ",".join(data.locales))
    rows, counts = augmentation.training_rows(translated, train, held_out)
    combined = pd.concat([train, rows], ignore_index=True)
    splits.check_no_leakage(combined, held_out)
    counts["dropped_rows"] = report.to_dict()
    logging.info("augmentation: %d translated pairs added to %d training pairs (%d of eval queries left out)",
                 counts["augment_pairs_added"], len(train), counts["augment_pairs_of_eval_queries"])
    return combined, counts


# The settings that change the records built from files or generated data (with the seed, which
# draws the eval split and the generated data); frames a caller brings are split and formatted
# already, so only FRAME_RECORD_SETTINGS apply to them.
RECORD_SETTINGS = ("synthetic_queries", "task", "eval_split", "eval_fraction", "on_bad_rows", "max_length",
                   "field_style", "prompt_tokens", "entity_markers", "num_shards", "seed", "backbone", "locales")
FRAME_RECORD_SETTINGS = ("max_length", "num_shards", "backbone")


def data_identity(config: RunConfig, frames: "SplitFrames | None" = None) -> dict:
    """The run's input data by content: {"examples": {"size", "sha256"}, "products": ...} for
    files, the frames' hash for frames, the matched shards' names and sizes for prebuilt
    TFRecords (not read whole at every start: they can be many GB on gs://); generated data is
    identified by its settings (--synthetic_queries and --seed). Augmentation files
    (--augment_examples/--augment_products) count by content too."""
    data = config.data
    if frames is not None:
        return {"frames": frames.fingerprint()}
    if data.from_tfrecords:
        return {"train_tfrecords": files.pattern_fingerprint(data.train_tfrecords, content=False),
                "eval_tfrecords": files.pattern_fingerprint(data.eval_tfrecords, content=False)}
    augmentation = {}
    if data.augment_examples is not None:
        augmentation = {"augment_examples": files.fingerprint(data.augment_examples),
                        "augment_products": files.fingerprint(data.augment_products)}
    if data.synthetic_queries:
        return augmentation
    return {"examples": files.fingerprint(data.examples), "products": files.fingerprint(data.products),
            **augmentation}


def _cache_key(config: RunConfig, preprocessor, identity: dict, from_frames: bool) -> dict:
    """What the cached shards depend on: input content, record settings, the tokenizer and the
    code of the text path (cleaning, template, packing)."""
    from esci_tf.preprocessing.fields_preprocessor import text_path_fingerprint

    flat = config.flat()
    names = FRAME_RECORD_SETTINGS if from_frames else RECORD_SETTINGS
    return {**identity, **recorded({name: flat[name] for name in names}), "tokenizer": preprocessor.fingerprint(),
            "text_path": text_path_fingerprint()}


def _shard_sizes(data_dir: str) -> dict:
    from esci_tf.records.schema import SHARD_SUFFIX

    return {os.path.basename(path): tf.io.gfile.stat(path).length
            for path in sorted(tf.io.gfile.glob(os.path.join(data_dir, f"*{SHARD_SUFFIX}")))}


def _stale_reason(saved: dict | None, key: dict, data_dir: str) -> str | None:
    """Why the cache in data_dir cannot be used for `key` (None: it can)."""
    if saved is None:
        return "no TFRecords built yet"
    if "unreadable" in saved:
        return saved["unreadable"]
    if saved.get("source") != key:
        old = saved.get("source") or {}
        changed = sorted(name for name in set(old) | set(key) if old.get(name) != key.get(name))
        return f"built from other inputs or settings ({', '.join(changed)} changed)"
    sizes = _shard_sizes(data_dir)
    for name, size in (saved.get("shards") or {}).items():
        if sizes.get(name) != size:
            found = "missing" if name not in sizes else f"{sizes[name]} bytes"
            return f"shard {name} is {found}, built with {size} bytes"
    if saved.get("shards") is None:
        return "built by an older version (no shard sizes recorded)"
    from esci_tf.records.summary import SUMMARY_FILE

    try:
        files.read_json(os.path.join(data_dir, SUMMARY_FILE))
    except (FileNotFoundError, DataError) as error:
        return f"{SUMMARY_FILE} cannot be read ({error})"
    return None


def _count_records(pattern: str) -> int:
    from esci_tf.records.shards import check_shards

    return int(sum(check_shards(pattern).values()))


def prepare_run_data(config: RunConfig, preprocessor, frames: SplitFrames | None = None,
                     show_progress: bool = True, identity: dict | None = None) -> RunData:
    """The run's RunData; shards are built in <output_dir>/data unless they exist, intact, for
    the same inputs and settings (see the module docstring). `identity`: data_identity(config,
    frames) when the caller has it already."""
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from esci_tf.records.builder import build_shards

    data = config.data
    if data.from_tfrecords and frames is None:
        template = TemplateSettings(data.field_style, data.prompt_tokens)
        num_train, num_eval = _count_records(data.train_tfrecords), _count_records(data.eval_tfrecords)
        info = {"train_tfrecords": data.train_tfrecords, "eval_tfrecords": data.eval_tfrecords,
                "num_train": num_train, "num_eval": num_eval}
        return RunData(data.train_tfrecords, data.eval_tfrecords, num_train, num_eval, info, template)
    data_dir = os.path.join(config.output_dir, DATA_DIR)
    info_path = os.path.join(data_dir, DATA_INFO_FILE)
    if is_chief():
        files.remove_temporaries(data_dir)
    if identity is None:
        identity = data_identity(config, frames)
    source = _cache_key(config, preprocessor, identity, from_frames=frames is not None)
    try:
        saved = files.read_json(info_path, missing_ok=True)
    except DataError as error:
        saved = {"source": None, "unreadable": str(error)}
    reason = _stale_reason(saved, source, data_dir)
    if reason is not None:
        log = logging.info if saved is None else logging.warning  # a cache thrown away is news
        log("building the TFRecords in %s: %s", data_dir, reason)
        if tf.io.gfile.exists(info_path):
            tf.io.gfile.remove(info_path)  # no data_info.json vouches for a half-done rebuild
        frames = frames or load_split_frames(config, data_dir)
        splits = {"train": frames.train, **({EVAL_SPLIT_NAME: frames.eval} if len(frames.eval) else {})}
        summary = build_shards(splits, data_dir,
                               FrameEncoder(preprocessor, frames.template), num_shards=data.num_shards,
                               num_folds=1, seed=config.runtime.seed, settings=dict(source),
                               dropped=frames.info.get("dropped_rows"), show_progress=show_progress)
        info = dict(frames.info, num_train=len(frames.train), num_eval=len(frames.eval),
                    num_train_queries=int(frames.train["query_id"].nunique()),
                    num_eval_queries=int(frames.eval["query_id"].nunique()), tfrecords_summary=summary)
        saved = {"source": source, "info": info, "template": frames.template.to_dict(),
                 "shards": _shard_sizes(data_dir)}
        files.write_json(info_path, saved)
    info = saved["info"]
    pattern = os.path.join(data_dir, "{}-*")
    return RunData(pattern.format("train"), pattern.format(EVAL_SPLIT_NAME), info["num_train"], info["num_eval"],
                   info, TemplateSettings.from_dict(saved["template"]))
