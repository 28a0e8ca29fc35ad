"""The TFRecords a run trains and evaluates on, built once into <output_dir>/data.

A run's data comes from prebuilt shards (--train_tfrecords/--eval_tfrecords), from the official
files (--examples/--products: read and validated once, split into a query-grouped eval slice
and the rest), from generated data (--synthetic_queries), or, for library callers such as the
recipe, from frames they pass in (`SplitFrames`). Frames become shards through
tfrecords.builder.build_shards; <output_dir>/data/data_info.json records what they were built
from, so a rerun with the same source reuses them and a changed source rebuilds them.
"""

import dataclasses
import hashlib
import os

import numpy as np
import pandas as pd

from esci_tf import files
from esci_tf.data.template import TemplateSettings
from esci_tf.training.config import ConfigError, RunConfig

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
    soft labels in tfrecords.builder.TARGET_COLUMNS), the template they are formatted with, and
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
    """(train, eval, info): the query-grouped eval slice and the rest, leaked queries removed."""
    from esci_tf.data import splits

    data = config.data
    if data.eval_split == "test":
        is_eval = (frame["split"] == "test").to_numpy()
        info = {"eval_split": "official test rows"}
    else:
        num_folds = max(2, int(round(1.0 / data.eval_fraction)))
        is_eval = np.asarray(splits.assign_folds(frame, num_folds, config.runtime.seed)) == 0
        info = {"eval_split": f"fold 0 of {num_folds} query-grouped folds (seed {config.runtime.seed})"}
    train, held_out = frame[~is_eval], frame[is_eval]
    if train.empty or held_out.empty:
        flag = "--eval_split" if data.eval_split == "test" else "--eval_fraction"
        raise ConfigError(f"{flag}: the split leaves {len(train)} training and {len(held_out)} eval pairs")
    train, removed = splits.remove_leaked_queries(train, held_out)
    splits.check_no_leakage(train, held_out)
    info["train_pairs_removed_for_leakage"] = int(removed)
    return train.reset_index(drop=True), held_out.reset_index(drop=True), info


def load_split_frames(config: RunConfig, data_dir: str) -> SplitFrames:
    """The run's files (or generated data) read, validated and split once."""
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
    template = TemplateSettings.for_catalog(products_table, data.field_style, data.prompt_tokens,
                                            data.entity_markers)
    train, held_out, info = split_frame(config, frame)
    info["dropped_rows"] = drop_report.to_dict()
    return SplitFrames(train, held_out, template, info)


def _source(config: RunConfig) -> dict:
    """The settings the files-or-synthetic data of a run depend on."""
    data, model = config.data, config.model
    return {"examples": data.examples, "products": data.products, "synthetic_queries": data.synthetic_queries,
            "task": data.task, "eval_split": data.eval_split, "eval_fraction": data.eval_fraction,
            "seed": config.runtime.seed, "max_length": data.max_length, "backbone": model.backbone,
            "tokenizer": model.tokenizer_location, "field_style": data.field_style,
            "prompt_tokens": data.prompt_tokens, "entity_markers": data.entity_markers, "num_shards": data.num_shards}


def _count_records(pattern: str) -> int:
    from tfrecords.shards import check_shards

    return int(sum(check_shards(pattern).values()))


def prepare_run_data(config: RunConfig, preprocessor, frames: SplitFrames | None = None,
                     show_progress: bool = True) -> RunData:
    """The run's RunData; shards are built in <output_dir>/data unless they exist for the same
    source (the data settings, or the fingerprint of the given frames)."""
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from tfrecords.builder import build_shards

    data = config.data
    if data.from_tfrecords and frames is None:
        template = TemplateSettings(data.field_style, data.prompt_tokens)
        num_train, num_eval = _count_records(data.train_tfrecords), _count_records(data.eval_tfrecords)
        info = {"train_tfrecords": data.train_tfrecords, "eval_tfrecords": data.eval_tfrecords,
                "num_train": num_train, "num_eval": num_eval}
        return RunData(data.train_tfrecords, data.eval_tfrecords, num_train, num_eval, info, template)
    data_dir = os.path.join(config.output_dir, DATA_DIR)
    info_path = os.path.join(data_dir, DATA_INFO_FILE)
    source = _source(config) if frames is None else {
        "frames": frames.fingerprint(), "max_length": data.max_length, "backbone": config.model.backbone,
        "tokenizer": config.model.tokenizer_location, "num_shards": data.num_shards}
    saved = files.read_json(info_path, missing_ok=True)
    if saved is None or saved.get("source") != source:
        frames = frames or load_split_frames(config, data_dir)
        splits = {"train": frames.train, **({EVAL_SPLIT_NAME: frames.eval} if len(frames.eval) else {})}
        summary = build_shards(splits, data_dir,
                               FrameEncoder(preprocessor, frames.template), num_shards=data.num_shards,
                               num_folds=1, seed=config.runtime.seed, settings=dict(source),
                               dropped=frames.info.get("dropped_rows"), show_progress=show_progress)
        info = dict(frames.info, num_train=len(frames.train), num_eval=len(frames.eval),
                    num_train_queries=int(frames.train["query_id"].nunique()),
                    num_eval_queries=int(frames.eval["query_id"].nunique()), tfrecords_summary=summary)
        saved = {"source": source, "info": info, "template": frames.template.to_dict()}
        files.write_json(info_path, saved)
    info = saved["info"]
    pattern = os.path.join(data_dir, "{}-*")
    return RunData(pattern.format("train"), pattern.format(EVAL_SPLIT_NAME), info["num_train"], info["num_eval"],
                   info, TemplateSettings.from_dict(saved["template"]))
