"""Train a cross-encoder ranker: `python -m trainers.fit --flagfile=trainers/flags/demo.flags`.

Reads ESCI parquet/csv (tokenized into TFRecords under <output_dir>/data) or prebuilt
TFRecords, fine-tunes esci_tf.models.build_cross_encoder with AdamW (linear warmup + decay)
through esci_tf.training.training_model.TrainingModel, evaluates NDCG (and random-order NDCG)
on the query-grouped eval lists, and writes to --output_dir: checkpoints/ (resumable),
logs/ (TensorBoard), metrics.json, eval_history.jsonl, flags.txt, eval_predictions.csv (of the
best model), best_model.keras, best_model.json and preprocessing.json.
A killed run started again with the same flags resumes from its last checkpoint.
"""

import dataclasses
import json
import os
import time

from absl import app, flags, logging

from trainers.flags import fit_flags

fit_flags.define_flags()
FLAGS = flags.FLAGS

# Imported after flag definition so that `--help` stays fast.
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

from esci_tf.training import checkpointing, evaluation, schedules  # noqa: E402
from esci_tf.training.progress import ProgressBar, summary_table  # noqa: E402

DATA_DIR = "data"
CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "eval_history.jsonl"
FLAGS_FILE = "flags.txt"
PREDICTIONS_FILE = "eval_predictions.csv"
DATA_INFO_FILE = "data_info.json"
NO_DECAY_NAMES = ["bias", "gamma", "beta", "layer_norm", "layernorm"]


# ----------------------------------------------------------------------------- data
@dataclasses.dataclass
class RunData:
    """Where the run's TFRecords are and what went into them."""

    train_pattern: str
    eval_pattern: str
    num_train: int
    num_eval: int
    info: dict


def _template_settings(cfg, tagger) -> dict:
    settings = {"field_style": cfg.field_style, "prompt_tokens": cfg.prompt_tokens,
                "entity_markers": cfg.entity_markers}
    if tagger is not None:
        settings["entity_brands"] = sorted(tagger.brands)
        settings["entity_colors"] = sorted(tagger.colors)
    return settings


def _split_frame(cfg, frame: pd.DataFrame):
    """(train, eval, info): the query-grouped eval slice and the rest, leaked queries removed."""
    from esci_tf.data import splits

    if cfg.eval_split == "test":
        is_eval = (frame["split"] == "test").to_numpy()
        info = {"eval_split": "official test rows"}
    else:
        num_folds = max(2, int(round(1.0 / cfg.eval_fraction)))
        is_eval = np.asarray(splits.assign_folds(frame, num_folds, cfg.seed)) == 0
        info = {"eval_split": f"fold 0 of {num_folds} query-grouped folds (seed {cfg.seed})"}
    train, held_out = frame[~is_eval], frame[is_eval]
    if train.empty or held_out.empty:
        flag = "--eval_split" if cfg.eval_split == "test" else "--eval_fraction"
        raise flags.IllegalFlagValueError(
            f"{flag}: the split leaves {len(train)} training and {len(held_out)} eval pairs")
    train, removed = splits.remove_leaked_queries(train, held_out)
    splits.check_no_leakage(train, held_out)
    info["train_pairs_removed_for_leakage"] = int(removed)
    return train.reset_index(drop=True), held_out.reset_index(drop=True), info


def write_synthetic_data(num_queries: int, seed: int, data_dir: str):
    """Generated ESCI-like examples/products parquet files in data_dir; returns their paths."""
    from esci_tf.data.synthetic import generate_esci

    examples, products = generate_esci(num_queries, seed)
    tf.io.gfile.makedirs(data_dir)
    paths = (os.path.join(data_dir, "synthetic_examples.parquet"),
             os.path.join(data_dir, "synthetic_products.parquet"))
    examples.to_parquet(paths[0], index=False)
    products.to_parquet(paths[1], index=False)
    return paths


EXAMPLE_COLUMNS = ["example_id", "query", "query_id", "product_id", "product_locale",
                   "esci_label", "small_version", "large_version"]
EVAL_SPLIT_NAME = "test"  # the eval slice is written as the "test" split of the run's data


def build_tfrecords(cfg, preprocessor, data_dir: str, examples: str, products: str):
    """Load, validate and split the ESCI files, then build train/eval TFRecords in data_dir with
    tfrecords.pipeline.build_tfrecords (eval slice as its "test" split). Returns (info,
    template settings)."""
    from esci_tf.data.reader import load_esci, read_table
    from tfrecords.pipeline import build_tfrecords as build_split_shards

    frame, drop_report = load_esci(examples, products, task=cfg.task, on_bad_rows=cfg.on_bad_rows)
    if frame.empty:
        raise flags.IllegalFlagValueError(
            f"--examples={examples}: no pairs of task {cfg.task} in the file")
    tagger = None
    if cfg.entity_markers:
        from esci_tf.data.entities import CatalogEntityTagger

        tagger = CatalogEntityTagger.from_products(read_table(products))
    template = _template_settings(cfg, tagger)
    train, held_out, info = _split_frame(cfg, frame)
    prepared = pd.concat([train[EXAMPLE_COLUMNS].assign(split="train"),
                          held_out[EXAMPLE_COLUMNS].assign(split=EVAL_SPLIT_NAME)])
    prepared_path = os.path.join(data_dir, "prepared_examples.parquet")
    tf.io.gfile.makedirs(data_dir)
    prepared.to_parquet(prepared_path, index=False)
    tokenizer = cfg.backbone + (f":{_tokenizer_location(cfg)}" if _tokenizer_location(cfg) else "")
    summary = build_split_shards(
        prepared_path, products, data_dir, tokenizer=tokenizer, max_length=cfg.max_length,
        task=cfg.task, num_folds=1, num_shards=cfg.num_shards,
        entity_markers=cfg.entity_markers, field_style=cfg.field_style,
        prompt_tokens=cfg.prompt_tokens, on_bad_rows=cfg.on_bad_rows, seed=cfg.seed,
        show_progress=cfg.progress_bar, preprocessor=preprocessor)
    info.update(dropped_rows=drop_report.to_dict(), num_train=len(train), num_eval=len(held_out),
                num_train_queries=int(train["query_id"].nunique()),
                num_eval_queries=int(held_out["query_id"].nunique()),
                tfrecords_summary=summary)
    return info, template


def _tokenizer_location(cfg):
    return fit_flags.resolve_location(cfg.tokenizer or cfg.checkpoint)


def _count_records(pattern: str) -> int:
    from tfrecords.shards import check_shards

    return int(sum(check_shards(pattern).values()))


def prepare_data(cfg, preprocessor, output_dir: str):
    """RunData and template settings; file or synthetic input is built once into
    <output_dir>/data (rebuilt when the data flags change)."""
    if cfg.train_tfrecords:
        template = _template_settings(cfg, None)
        if cfg.entity_markers:
            raise flags.IllegalFlagValueError(
                "--entity_markers applies when building from --examples/--products; prebuilt "
                "--train_tfrecords already carry their tokens")
        num_train, num_eval = _count_records(cfg.train_tfrecords), _count_records(cfg.eval_tfrecords)
        info = {"train_tfrecords": cfg.train_tfrecords, "eval_tfrecords": cfg.eval_tfrecords,
                "num_train": num_train, "num_eval": num_eval}
        return RunData(cfg.train_tfrecords, cfg.eval_tfrecords, num_train, num_eval, info), template
    data_dir = os.path.join(output_dir, DATA_DIR)
    info_path = os.path.join(data_dir, DATA_INFO_FILE)
    source = {"examples": cfg.examples, "products": cfg.products,
              "synthetic_queries": cfg.synthetic_queries, "task": cfg.task,
              "eval_split": cfg.eval_split, "eval_fraction": cfg.eval_fraction, "seed": cfg.seed,
              "max_length": cfg.max_length, "backbone": cfg.backbone,
              "tokenizer": cfg.tokenizer or cfg.checkpoint, "field_style": cfg.field_style,
              "prompt_tokens": cfg.prompt_tokens, "entity_markers": cfg.entity_markers}
    saved = _read_json(info_path)
    if saved is None or saved.get("source") != source:
        logging.info("Building TFRecords in %s", data_dir)
        examples, products = cfg.examples, cfg.products
        if cfg.synthetic_queries:
            examples, products = write_synthetic_data(cfg.synthetic_queries, cfg.seed, data_dir)
        info, template = build_tfrecords(cfg, preprocessor, data_dir, examples, products)
        saved = {"source": source, "info": info, "template": template}
        _write_json(info_path, saved)
    info = saved["info"]
    pattern = os.path.join(data_dir, "{}-*")
    return RunData(pattern.format("train"), pattern.format(EVAL_SPLIT_NAME), info["num_train"],
                   info["num_eval"], info), saved["template"]


def train_stream(cfg, data: RunData, position: int):
    """The deterministic, endless training stream, skipped to `position` batches."""
    from esci_tf.training.losses import smooth_targets
    from tfrecords.reader import make_dataset

    if cfg.listwise_loss_weight:
        # Lists of list_size rows, so a batch still holds about --batch_size pairs.
        dataset = make_dataset(data.train_pattern, max(1, cfg.batch_size // cfg.list_size),
                               cfg.max_length, training=True, listwise=True,
                               list_size=cfg.list_size, long_lists="split",
                               deterministic=True, seed=cfg.seed, repeat=True)
    else:
        # Length buckets: batches of a few static shapes [B, bucket]; the compiled train step
        # is traced once for [B, None] (reduce_retracing) and XLA compiles once per bucket.
        dataset = make_dataset(data.train_pattern, cfg.batch_size, cfg.max_length, training=True,
                               deterministic=True, seed=cfg.seed, repeat=True,
                               length_buckets=fit_flags.length_buckets(cfg))
    if cfg.label_smoothing:
        dataset = dataset.map(lambda x, y: (x, smooth_targets(y, cfg.label_smoothing)))
    return dataset.skip(position)


def eval_dataset(cfg, data: RunData):
    """The eval pairs in file order (every pair once), with their ids."""
    from tfrecords.reader import make_dataset

    batch_size = cfg.eval_batch_size or 2 * cfg.batch_size
    dataset = make_dataset(data.eval_pattern, batch_size, cfg.max_length, training=False,
                           deterministic=True, include_metadata=True)
    num_batches = -(-data.num_eval // batch_size)
    if cfg.max_eval_batches:
        dataset = dataset.take(cfg.max_eval_batches)
        num_batches = min(num_batches, cfg.max_eval_batches)
    # A known size lets Keras' predict stop cleanly at the end of the eval set.
    return dataset.apply(tf.data.experimental.assert_cardinality(num_batches))


# ----------------------------------------------------------------------------- model
def backbone_config(cfg, preprocessor):
    if cfg.backbone_config is None:
        return None
    config = json.loads(cfg.backbone_config)
    config.setdefault("vocabulary_size", preprocessor.base_vocabulary_size)
    if config["vocabulary_size"] != preprocessor.base_vocabulary_size:
        raise flags.IllegalFlagValueError(
            f"--backbone_config vocabulary_size={config['vocabulary_size']} but the tokenizer has "
            f"{preprocessor.base_vocabulary_size} tokens")
    config.setdefault("max_sequence_length", cfg.max_length)
    return config


def build_training_model(cfg, preprocessor, total_steps: int, warmup_steps: int):
    """(TrainingModel, CrossEncoder, optimizer), compiled; call inside the strategy scope."""
    from esci_tf.models import build_cross_encoder
    from esci_tf.training.lazy_adamw import LazyAdamW
    from esci_tf.training.training_model import TrainingModel

    model = build_cross_encoder(
        cfg.backbone, checkpoint=fit_flags.resolve_location(cfg.checkpoint),
        backbone_config=backbone_config(cfg, preprocessor), pooling=cfg.pooling,
        num_pooled_layers=cfg.num_pooled_layers, multi_sample_dropout=cfg.multi_sample_dropout,
        cross_attention=cfg.cross_attention, dropout=cfg.dropout, dtype_policy=cfg.precision,
        tokenizer_vocabulary_size=preprocessor.base_vocabulary_size, seed=cfg.seed,
        separator_token_id=preprocessor.separator_token_id)
    training_model = TrainingModel(
        model, adversarial=None if cfg.adversarial == "none" else cfg.adversarial,
        fgm_epsilon=cfg.fgm_epsilon, awp_lr=cfg.awp_lr, awp_eps=cfg.awp_eps,
        awp_start_loss=cfg.awp_start_loss, listwise_loss_weight=cfg.listwise_loss_weight,
        listwise_loss=cfg.listwise_loss)
    optimizer_class = LazyAdamW if cfg.optimizer == "lazy_adamw" else keras.optimizers.AdamW
    optimizer = optimizer_class(
        learning_rate=schedules.WarmupLinearDecay(cfg.learning_rate, warmup_steps, total_steps),
        weight_decay=cfg.weight_decay, clipnorm=cfg.clipnorm or None,
        gradient_accumulation_steps=cfg.gradient_accumulation if cfg.gradient_accumulation > 1 else None)
    optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
    training_model.compile(optimizer=optimizer, jit_compile=cfg.jit_compile,
                           steps_per_execution=cfg.steps_per_execution)
    return training_model, model, optimizer


# ----------------------------------------------------------------------------- loop
class EvalAndCheckpoint(keras.callbacks.Callback):
    """Saves resumable checkpoints and evaluates at fixed batch positions of the run."""

    def __init__(self, run, start_position: int):
        super().__init__()
        self.run = run
        self.position = start_position
        self._epoch_start = start_position

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.position

    def on_train_batch_end(self, batch, logs=None):
        previous, self.position = self.position, self._epoch_start + batch + 1
        if _crossed(previous, self.position, self.run.checkpoint_every):
            self.run.checkpoint.save(self.position)
        if _crossed(previous, self.position, self.run.eval_every) and self.position < self.run.total_steps:
            self.run.evaluate(self.position)


def _crossed(previous: int, current: int, every: int) -> bool:
    return every > 0 and current // every > previous // every


class ResumedTensorBoard(keras.callbacks.TensorBoard):
    """TensorBoard whose batch steps continue from the resumed position."""

    def __init__(self, start_position: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_position = start_position

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = self.start_position


class Run:
    """One training run: its config, data, model, checkpoint and eval history."""

    def __init__(self, cfg, extra_callbacks=()):
        self.cfg = cfg
        self.output_dir = cfg.output_dir
        self.extra_callbacks = list(extra_callbacks)
        self.history = []
        self.timing = {}

    # -- set-up
    def setup(self):
        from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
        from esci_tf.preprocessing.tokenizer_loader import load_tokenizer
        from esci_tf.training.strategy import get_strategy

        cfg = self.cfg
        tf.io.gfile.makedirs(self.output_dir)
        with tf.io.gfile.GFile(os.path.join(self.output_dir, FLAGS_FILE), "w") as f:
            f.write(fit_flags.flags_as_flagfile())
        keras.utils.set_random_seed(cfg.seed)
        self.preprocessor = PairPreprocessor(load_tokenizer(cfg.backbone, _tokenizer_location(cfg)),
                                             cfg.backbone, cfg.max_length)
        start = time.perf_counter()
        self.data, self.template = prepare_data(cfg, self.preprocessor, self.output_dir)
        self.timing["data_seconds"] = time.perf_counter() - start
        self.steps_per_epoch = self.data.num_train // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise flags.IllegalFlagValueError(
                f"--batch_size={cfg.batch_size} is larger than the {self.data.num_train} "
                "training pairs")
        self.total_steps = cfg.steps or cfg.epochs * self.steps_per_epoch
        warmup = cfg.warmup_steps if cfg.warmup_steps is not None else int(
            round(cfg.warmup_ratio * self.total_steps))
        if warmup > self.total_steps:
            raise flags.IllegalFlagValueError(
                f"--warmup_steps={warmup} exceeds the run's {self.total_steps} steps")
        per_call = cfg.steps_per_execution
        for name in ("eval_every_steps", "checkpoint_every_steps"):
            if getattr(cfg, name) % per_call:
                raise flags.IllegalFlagValueError(
                    f"--{name}={getattr(cfg, name)} must be a multiple of "
                    f"--steps_per_execution={per_call}")
        # Default: once an epoch (rounded down to whole compiled calls).
        self.eval_every = cfg.eval_every_steps or max(per_call, self.steps_per_epoch // per_call * per_call)
        self.checkpoint_every = cfg.checkpoint_every_steps or self.eval_every
        self.strategy = get_strategy(cfg.strategy, cfg.tpu_address)
        with self.strategy.scope():
            self.training_model, self.model, self.optimizer = build_training_model(
                cfg, self.preprocessor, self.total_steps, warmup)
            self.checkpoint = checkpointing.TrainingCheckpoint(
                os.path.join(self.output_dir, CHECKPOINT_DIR), self.training_model,
                self.optimizer)
        self.position = self._restore()
        checkpointing.save_preprocessing(self.output_dir, self.preprocessor, self.template)
        self.eval_data = eval_dataset(cfg, self.data)
        self.eval_writer = tf.summary.create_file_writer(os.path.join(self.output_dir, LOG_DIR, "eval"))

    def _restore(self) -> int:
        has_checkpoint = self.checkpoint.manager.latest_checkpoint is not None
        if has_checkpoint and not self.cfg.resume:
            raise flags.IllegalFlagValueError(
                f"--noresume but {self.output_dir} holds checkpoints of an earlier run; use "
                "another --output_dir or drop --noresume to continue it")
        position = self.checkpoint.restore_latest() if self.cfg.resume else 0
        if position > self.total_steps:
            raise flags.IllegalFlagValueError(
                f"the checkpoint in {self.output_dir} is at step {position}, past this run's "
                f"{self.total_steps} steps (--steps/--epochs changed?)")
        history_path = os.path.join(self.output_dir, HISTORY_FILE)
        if position and tf.io.gfile.exists(history_path):
            with tf.io.gfile.GFile(history_path) as f:
                self.history = [json.loads(line) for line in f if line.strip()]
            # Evaluations after the checkpoint belong to the killed part of the run.
            self.history = [h for h in self.history if h["step"] <= position]
        self._rewrite_history()
        if position:
            logging.info("Resuming from step %d of %d", position, self.total_steps)
        return position

    def _rewrite_history(self):
        with tf.io.gfile.GFile(os.path.join(self.output_dir, HISTORY_FILE), "w") as f:
            for entry in self.history:
                f.write(json.dumps(entry) + "\n")

    # -- evaluation
    def evaluate(self, step: int) -> dict:
        start = time.perf_counter()
        predictions = evaluation.predict_dataset(self.training_model, self.eval_data)
        report = evaluation.evaluate_predictions(predictions)
        report["step"] = int(step)
        report["eval_seconds"] = time.perf_counter() - start
        self.history.append(report)
        self._rewrite_history()
        with self.eval_writer.as_default(step=step):
            for key in ("ndcg", "random_ndcg", "accuracy", "macro_f1"):
                tf.summary.scalar(key, report[key])
            for locale, sub in report.get("per_locale", {}).items():
                tf.summary.scalar(f"ndcg_{locale}", sub["ndcg"])
        self.eval_writer.flush()
        logging.info("step %d: NDCG %.4f (random %.4f), accuracy %.4f", step, report["ndcg"],
                     report["random_ndcg"], report["accuracy"])
        saved = checkpointing.keep_if_best(self.model, self.output_dir, report["ndcg"], step,
                                           {"random_ndcg": report["random_ndcg"]})
        if saved:
            columns = ["example_id", "query_id", "product_id", "locale", "label", "score",
                       *evaluation.PROB_COLUMNS]
            predictions[columns].rename(columns={"locale": "product_locale"}).to_csv(
                os.path.join(self.output_dir, PREDICTIONS_FILE), index=False)
        return report

    # -- training
    def train(self):
        cfg = self.cfg
        remaining = self.total_steps - self.position
        self.progress = ProgressBar(self.total_steps, cfg.batch_size, self.position,
                                    disable=not cfg.progress_bar)
        callbacks = [
            self.progress,
            EvalAndCheckpoint(self, self.position),
            ResumedTensorBoard(self.position, os.path.join(self.output_dir, LOG_DIR),
                               update_freq=50),
        ] + self.extra_callbacks
        start = time.perf_counter()
        if remaining > 0:
            self.training_model.fit(train_stream(cfg, self.data, self.position), epochs=1,
                                    steps_per_epoch=remaining, callbacks=callbacks, verbose=0,
                                    shuffle=False)
        self.progress.close()
        self.timing["train_seconds"] = time.perf_counter() - start
        self.timing.update({k: v for k, v in self.progress.throughput().items() if k != "seconds"})
        if self.checkpoint.manager.latest_checkpoint is None or \
                int(self.checkpoint.position.numpy()) != self.total_steps:
            self.checkpoint.save(self.total_steps)
        if not self.history or self.history[-1]["step"] != self.total_steps:
            self.evaluate(self.total_steps)

    def write_metrics(self) -> dict:
        final = self.history[-1]
        best_info = checkpointing.read_best_info(self.output_dir)
        best = next(h for h in self.history if h["step"] == best_info["step"]) \
            if best_info and any(h["step"] == best_info["step"] for h in self.history) else final
        metrics = {
            "final": final, "best": best, "history": self.history,
            "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
            "data": self.data.info, "timing": self.timing,
        }
        _write_json(os.path.join(self.output_dir, METRICS_FILE), metrics)
        return metrics


def summary_rows(metrics: dict):
    final, best = metrics["final"], metrics["best"]
    rows = [("steps", metrics["total_steps"]), ("final NDCG", final["ndcg"]),
            ("final random-order NDCG", final["random_ndcg"]),
            ("best NDCG (step %d)" % best["step"], best["ndcg"]),
            ("accuracy", final["accuracy"]), ("micro F1", final["micro_f1"]),
            ("macro F1", final["macro_f1"]), ("eval queries", final["num_queries"])]
    for locale, sub in sorted(final.get("per_locale", {}).items()):
        rows.append((f"NDCG {locale} (random)", f"{sub['ndcg']:.4f} ({sub['random_ndcg']:.4f})"))
    timing = metrics["timing"]
    if "steps_per_second" in timing:
        rows += [("steps/s", timing["steps_per_second"]),
                 ("examples/s", timing["examples_per_second"])]
    rows.append(("train seconds", timing.get("train_seconds", 0.0)))
    return rows


def train(cfg, extra_callbacks=()) -> dict:
    """Run (or resume) training as configured by `cfg` (the parsed FLAGS); returns metrics."""
    run = Run(cfg, extra_callbacks)
    run.setup()
    run.train()
    metrics = run.write_metrics()
    print(summary_table(summary_rows(metrics), title=f"esci-tf fit: {cfg.output_dir}"))
    return metrics


def run_with_args(argv, extra_callbacks=()) -> dict:
    """Parse `argv` (argv[0] is the program name) as fit flags and train; for library use."""
    FLAGS.unparse_flags()
    FLAGS(list(argv))
    return train(FLAGS, extra_callbacks)


def _read_json(path):
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _write_json(path, value):
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(value, f, indent=2, default=_json_default)


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    train(FLAGS)


if __name__ == "__main__":
    app.run(main)
