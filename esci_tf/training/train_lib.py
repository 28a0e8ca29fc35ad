"""run_experiment: one strategy-agnostic training run, resumable at the exact batch.

The shape of tf-models' train_lib.run_experiment: a RankingTask builds the inputs, model and
train step; this module runs them under the run's tf.distribute strategy with Keras' fit,
saves resumable checkpoints, evaluates at fixed batch positions and writes the run's outputs
to config.output_dir:

    checkpoints/          model + optimizer variables + data position (TrainingCheckpoint)
    logs/                 TensorBoard: train/ loss and learning rate every TRAIN_SCALARS_EVERY
                          batches and at the last; eval/ every evaluation, at its step
    data/                 the run's TFRecords and data_info.json (esci_tf.training.run_data)
    preprocessing.json    the FrameEncoder (PairPreprocessor + template) prediction loads
    best_model.keras, best_model.json, eval_predictions.csv   the best model by eval NDCG
    eval_history.jsonl, metrics.json
    run_settings.json     the settings the results depend on (esci_tf.training.run_settings)
    flags.txt             the trainers.fit flags of the last run that started training
    run.lock              held while a run is live (esci_tf.training.run_lock)

A run killed anywhere and started again with the same config continues from its last
checkpoint: the training stream is deterministic and skipped to the saved position, which
Keras' BackupAndRestore cannot do (it restarts the interrupted epoch). Every file is written
under a temporary name and renamed (esci_tf.files.atomic_path); a resume first removes what a
killed writer left, refuses other result settings, drops what the killed part of the run
wrote after the resumed position, and redoes the evaluation at that position when its outputs
are incomplete or unreadable (see _reconcile_best). A SIGTERM (a preempted VM) stops the run at
the end of the current batch with a checkpoint of that step and raises preemption.Preempted
(esci_tf.training.preemption); so does a SIGINT (Ctrl-C).
"""

import json
import os
import time

import keras
import tensorflow as tf
from absl import logging

from esci_tf import files, labels
from esci_tf.errors import DataError
from esci_tf.preprocessing.frame_encoder import FrameEncoder
from esci_tf.training import checkpointing, evaluation, preemption, run_settings, seeding
from esci_tf.training.config import ConfigError, RunConfig
from esci_tf.training.progress import ProgressBar
from esci_tf.training.run_data import data_identity, prepare_run_data
from esci_tf.training.run_lock import RunLock, is_chief
from esci_tf.training.strategy import get_strategy
from esci_tf.training.task import RankingTask

CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "eval_history.jsonl"
PREDICTIONS_FILE = "eval_predictions.csv"
FLAGS_FILE = "flags.txt"
TRAIN_SCALARS_EVERY = 50  # batches between TensorBoard's training scalars
PREDICTION_COLUMNS = ["example_id", "query_id", "product_id", "locale", "label", "score",
                      *labels.PROB_COLUMNS]


class EvalHistory:
    """The run's evaluations, one JSON line each in eval_history.jsonl."""

    def __init__(self, output_dir: str):
        self.path = os.path.join(output_dir, HISTORY_FILE)
        self.entries = []

    def load(self, until_step: int) -> "EvalHistory":
        """Entries up to a resumed position (later ones belong to the killed part of the run);
        a line that is not JSON raises DataError naming the file and line."""
        self.entries = []
        if until_step and tf.io.gfile.exists(self.path):
            with tf.io.gfile.GFile(self.path) as stream:
                lines = stream.read().splitlines()
            for number, line in enumerate(lines, 1):
                try:
                    entry = json.loads(line) if line.strip() else None
                except json.JSONDecodeError as error:
                    raise DataError(f"line {number} is not JSON ({error}); the run's evaluations cannot "
                                    "be recovered: delete the --output_dir to train it again", path=self.path) from None
                if entry is not None and entry["step"] <= until_step:
                    self.entries.append(entry)
        self._write()
        return self

    def drop(self, step: int) -> None:
        """Forget the evaluation at `step` (it is redone)."""
        self.entries = [e for e in self.entries if e["step"] != step]
        self._write()

    def append(self, entry: dict) -> None:
        self.entries.append(entry)
        self._write()

    def _write(self):
        files.write_text(self.path, "".join(json.dumps(entry) + "\n" for entry in self.entries))


class Evaluator:
    """Scores the eval set, keeps the best model, records the report (TensorBoard, history).

    The history line is written last: a run killed anywhere in an evaluation has no line for
    it, and the resumed run redoes it (keep_if_best rewrites a best model of the same step)."""

    def __init__(self, training_model, eval_data, output_dir: str, history: EvalHistory):
        self.training_model = training_model
        self.eval_data = eval_data
        self.output_dir = output_dir
        self.history = history
        self.writer = tf.summary.create_file_writer(os.path.join(output_dir, LOG_DIR, "eval"))

    def __call__(self, step: int) -> dict:
        start = time.perf_counter()
        predictions = evaluation.predict_dataset(self.training_model, self.eval_data)
        report = evaluation.evaluate_predictions(predictions)
        report["step"] = int(step)
        report["eval_seconds"] = time.perf_counter() - start
        logging.info("step %d: NDCG %.4f (random %.4f), accuracy %.4f", step, report["ndcg"],
                     report["random_ndcg"], report["accuracy"])
        if checkpointing.keep_if_best(self.training_model.model, self.output_dir, report["ndcg"], step,
                                      {"random_ndcg": report["random_ndcg"]}):
            table = predictions[PREDICTION_COLUMNS].rename(columns={"locale": "product_locale"})
            with files.atomic_path(os.path.join(self.output_dir, PREDICTIONS_FILE)) as temporary, \
                    tf.io.gfile.GFile(temporary, "w") as stream:
                table.to_csv(stream, index=False)
        # record_if(True): inside fit, Keras callbacks may leave a record_if condition set.
        with self.writer.as_default(step=step), tf.summary.record_if(True):
            for key in ("ndcg", "random_ndcg", "accuracy", "macro_f1"):
                tf.summary.scalar(key, report[key])
            for locale, sub in report.get("per_locale", {}).items():
                tf.summary.scalar(f"ndcg_{locale}", sub["ndcg"])
        self.writer.flush()
        self.history.append(report)
        return report


class PeriodicActions(keras.callbacks.Callback):
    """Calls `save(position)` and `evaluate(position)` when the run's batch position crosses a
    multiple of checkpoint_every / eval_every (evaluations stop before the last step, which the
    run evaluates itself)."""

    def __init__(self, start_position: int, total_steps: int, checkpoint_every: int, eval_every: int,
                 save, evaluate):
        super().__init__()
        self.position = self._epoch_start = start_position
        self.total_steps = total_steps
        self.checkpoint_every, self.eval_every = checkpoint_every, eval_every
        self.save, self.evaluate = save, evaluate

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.position

    def on_train_batch_end(self, batch, logs=None):
        previous, self.position = self.position, self._epoch_start + batch + 1
        if _crossed(previous, self.position, self.checkpoint_every):
            self.save(self.position)
        if _crossed(previous, self.position, self.eval_every) and self.position < self.total_steps:
            self.evaluate(self.position)


def _crossed(previous: int, current: int, every: int) -> bool:
    return every > 0 and current // every > previous // every


class StopOnPreemption(keras.callbacks.Callback):
    """Ends the fit at the end of the batch during which a SIGTERM came (preemption.Watch)."""

    def __init__(self, watch: preemption.Watch):
        super().__init__()
        self.watch = watch

    def on_train_batch_end(self, batch, logs=None):
        if self.watch.requested:
            self.model.stop_training = True


class TrainScalars(keras.callbacks.Callback):
    """TensorBoard's training scalars (loss, learning rate) at every `every`-th batch position and
    at the last one, at their batch position (continuing from a resumed one)."""

    def __init__(self, log_dir: str, start_position: int, total_steps: int, every: int | None = None):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.position = self._epoch_start = start_position
        self.total_steps, self.every = total_steps, every or TRAIN_SCALARS_EVERY

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.position

    def on_train_batch_end(self, batch, logs=None):
        self.position = self._epoch_start + batch + 1
        if self.position % self.every and self.position != self.total_steps:
            return
        with self.writer.as_default(step=self.position), tf.summary.record_if(True):
            for key, value in (logs or {}).items():
                tf.summary.scalar(key, float(value))
            tf.summary.scalar("learning_rate", float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))
        self.writer.flush()


def _restore(checkpoint, config: RunConfig, total_steps: int) -> int:
    """The resumed batch position (0 for a fresh run)."""
    has_checkpoint = checkpoint.manager.latest_checkpoint is not None
    if has_checkpoint and not config.runtime.resume:
        raise ConfigError(f"--noresume but {config.output_dir} holds checkpoints of an earlier run; use "
                          "another --output_dir or drop --noresume to continue it")
    position = checkpoint.restore_latest() if config.runtime.resume else 0
    if position > total_steps:
        raise ConfigError(f"the checkpoint in {config.output_dir} is at step {position}, past this run's "
                          f"{total_steps} steps (--steps/--epochs changed?)")
    if position:
        logging.info("Resuming from step %d of %d", position, total_steps)
    return position


def _evaluation_pending(position: int, schedule, history) -> bool:
    """True when `position` is an evaluation position of the run and has no history line."""
    every = schedule.eval_every
    is_eval_step = position == schedule.total_steps or (every > 0 and position % every == 0)
    return position > 0 and is_eval_step and all(e["step"] != position for e in history.entries)


def _reconcile_best(output_dir: str, position: int, history, pending: bool) -> bool:
    """Makes best_model.* agree with the resumed position and the history; True when the
    evaluation at `position` must be (re)done to rebuild them.

    Order of writes (keep_if_best, Evaluator): best_model.json, best_model.keras, predictions,
    then the history line. So a best model of a step after `position` belongs to the killed part
    of the run (removed: the replay picks it again), one of `position` itself without a history
    line is rewritten by the redone evaluation, and a missing or unreadable one of `position`
    is rebuilt by redoing it; one of an earlier step cannot be rebuilt (ConfigError)."""
    try:
        best = checkpointing.read_best_info(output_dir)
    except DataError as error:
        logging.warning("%s", error)
        best = {"step": -1}
    if best is not None and (best.get("step", -1) > position or best.get("step", -1) < 0):
        checkpointing.remove_best(output_dir, PREDICTIONS_FILE)
        if best["step"] > position:
            # An evaluation after `position` beat every one up to it: the replay picks it again.
            return pending
        best = None
    if pending and best is not None and best["step"] == position:
        return True
    if not history.entries:
        if best is not None:  # no evaluation vouches for it
            checkpointing.remove_best(output_dir, PREDICTIONS_FILE)
        return pending
    wanted = max(history.entries, key=lambda e: e["ndcg"])  # the first of the best, as keep_if_best
    model_path = os.path.join(output_dir, checkpointing.BEST_MODEL)
    if best is None:
        problem = f"{checkpointing.BEST_INFO} is missing or unreadable"
    elif best["step"] != wanted["step"]:
        problem = f"{checkpointing.BEST_INFO} names step {best['step']}, the evaluations step {wanted['step']}"
    else:
        problem = checkpointing.model_file_problem(model_path)
        problem = problem and f"{model_path} is {problem}"
    if problem is None:
        return pending
    if wanted["step"] != position:
        raise ConfigError(f"{problem}, and the weights of step {wanted['step']} are no longer in the checkpoints; "
                          f"delete {output_dir} to train the run again")
    logging.warning("%s: rebuilding it by evaluating step %d again", problem, position)
    history.drop(position)
    return True


def run_experiment(config: RunConfig, frames=None, callbacks=(), flags_text: str | None = None) -> dict:
    """Train (or resume) the run `config` describes and return its metrics (also metrics.json).

    frames: a run_data.SplitFrames to train and evaluate on instead of the config's data source.
    callbacks: extra Keras callbacks for the fit.
    flags_text: written to flags.txt once the run starts training (trainers.fit's flags), so a
    refused or failed invocation leaves the file of the run as it is.
    Raises ConfigError while another run holds output_dir, and when it holds checkpoints of a
    run with other result settings (run_settings).
    A SIGTERM or SIGINT raises preemption.Preempted(step) once the checkpoint of `step` is saved.
    """
    task = RankingTask(config, data_source=frames is None)
    tf.io.gfile.makedirs(config.output_dir)
    with RunLock(config.output_dir), preemption.Watch() as watch:
        try:
            return _run(task, config, frames, callbacks, flags_text, watch)
        except preemption.Preempted as stopped:
            if stopped.step is None:  # stopped outside the training loop: the newest checkpoint's step
                latest = tf.train.latest_checkpoint(os.path.join(config.output_dir, CHECKPOINT_DIR))
                stopped.step = int(latest.rsplit("-", 1)[1]) if latest else 0
            logging.warning("%s", stopped)
            raise


def _run(task, config: RunConfig, frames, callbacks, flags_text, watch) -> dict:
    output_dir = config.output_dir
    if is_chief():  # the chief's own leftovers; other workers must not delete its files mid-write
        files.remove_temporaries(output_dir)
    identity = data_identity(config, frames)
    settings = run_settings.result_settings(config, identity)
    if config.runtime.resume and tf.train.latest_checkpoint(os.path.join(output_dir, CHECKPOINT_DIR)):
        run_settings.check_resume(output_dir, settings)
    seeding.set_random_seed(config.runtime.seed)
    preprocessor = task.build_preprocessor()
    start = time.perf_counter()
    data = prepare_run_data(config, preprocessor, frames, show_progress=config.runtime.progress_bar,
                            identity=identity)
    timing = {"data_seconds": time.perf_counter() - start}
    schedule = task.schedule(data.num_train)
    strategy = get_strategy(config.runtime.strategy, config.runtime.tpu_address)
    with strategy.scope():
        model = task.build_model(preprocessor)
        training_model, optimizer = task.build_training_model(model, schedule)
        checkpoint = checkpointing.TrainingCheckpoint(os.path.join(output_dir, CHECKPOINT_DIR),
                                                      training_model, optimizer)
    position = _restore(checkpoint, config, schedule.total_steps)
    history = EvalHistory(output_dir).load(until_step=position)
    FrameEncoder(preprocessor, data.template).save(output_dir)
    evaluator = Evaluator(training_model, task.eval_dataset(data), output_dir, history) if data.num_eval else None

    def evaluate(step):  # a SIGTERM abandons an evaluation at once: the resumed run redoes it
        with watch.immediate():
            return evaluator(step)

    pending = evaluator is not None and _reconcile_best(output_dir, position, history,
                                                       _evaluation_pending(position, schedule, history))
    run_settings.record(output_dir, settings)
    if flags_text is not None:
        files.write_text(os.path.join(output_dir, FLAGS_FILE), flags_text)
    if pending and position < schedule.total_steps:  # the last step is evaluated below
        evaluate(position)

    progress = ProgressBar(schedule.total_steps, config.training.batch_size, position,
                           disable=not config.runtime.progress_bar)
    actions = PeriodicActions(position, schedule.total_steps, schedule.checkpoint_every,
                              schedule.eval_every if evaluator else 0, checkpoint.save, evaluate)
    fit_callbacks = [
        progress,
        actions,
        TrainScalars(os.path.join(output_dir, LOG_DIR, "train"), position, schedule.total_steps),
        *callbacks,
        StopOnPreemption(watch),
    ]
    start = time.perf_counter()
    remaining = schedule.total_steps - position
    try:
        with watch.deferred():
            if remaining > 0:
                training_model.fit(task.train_dataset(data, position), epochs=1, steps_per_epoch=remaining,
                                   callbacks=fit_callbacks, verbose=0, shuffle=False)
    except preemption.Preempted:
        pass  # in an evaluation the loop called: the weights are still those of actions.position
    progress.close()
    if watch.requested:
        with watch.deferred():
            if checkpoint.manager.latest_checkpoint is None or int(checkpoint.position.numpy()) != actions.position:
                checkpoint.save(actions.position)
        raise preemption.Preempted(actions.position, watch.signum)
    timing["train_seconds"] = time.perf_counter() - start
    timing.update({k: v for k, v in progress.throughput().items() if k != "seconds"})
    if remaining == 0:  # a rerun of a finished run trains nothing: keep the run's own timing
        previous = files.read_json(os.path.join(output_dir, METRICS_FILE), missing_ok=True) or {}
        timing = {**previous.get("timing", {"data_seconds": timing["data_seconds"]}), "reused_finished_run": True}
        logging.warning("%s already holds a finished run of %d steps; nothing trained now (its earlier "
                        "timing is kept)", output_dir, schedule.total_steps)
    with watch.deferred():
        if checkpoint.manager.latest_checkpoint is None or int(checkpoint.position.numpy()) != schedule.total_steps:
            checkpoint.save(schedule.total_steps)
    if evaluator is None:
        checkpointing.save_final_model(model, output_dir, schedule.total_steps)
    elif not history.entries or history.entries[-1]["step"] != schedule.total_steps:
        evaluate(schedule.total_steps)
    return write_metrics(output_dir, history.entries, schedule, data.info, timing)


def write_metrics(output_dir: str, history: list, schedule, data_info: dict, timing: dict) -> dict:
    """metrics.json: the final and best evaluations (None without an eval set), the history, the
    schedule, data and timing."""
    final = history[-1] if history else None
    best_info = checkpointing.read_best_info(output_dir)
    best = next((h for h in history if best_info and h["step"] == best_info["step"]), final)
    metrics = {"final": final, "best": best, "history": history, "total_steps": schedule.total_steps,
               "steps_per_epoch": schedule.steps_per_epoch, "data": data_info, "timing": timing}
    files.write_json(os.path.join(output_dir, METRICS_FILE), metrics)
    return metrics


def summary_rows(metrics: dict) -> list:
    """(name, value) rows of a run's metrics for the printed summary table."""
    final, best = metrics["final"], metrics["best"]
    if final is None:
        return [("steps", metrics["total_steps"]), ("eval", "none (no eval set)"),
                ("train seconds", metrics["timing"].get("train_seconds", 0.0))]
    rows = [("steps", metrics["total_steps"]), ("final NDCG", final["ndcg"]),
            ("final random-order NDCG", final["random_ndcg"]),
            ("best NDCG (step %d)" % best["step"], best["ndcg"]),
            ("accuracy", final["accuracy"]), ("micro F1", final["micro_f1"]),
            ("macro F1", final["macro_f1"]), ("eval queries", final["num_queries"])]
    for locale, sub in sorted(final.get("per_locale", {}).items()):
        rows.append((f"NDCG {locale} (random)", f"{sub['ndcg']:.4f} ({sub['random_ndcg']:.4f})"))
    timing = metrics["timing"]
    if "steps_per_second" in timing:
        rows += [("steps/s", timing["steps_per_second"]), ("examples/s", timing["examples_per_second"])]
    rows.append(("train seconds", timing.get("train_seconds", 0.0)))
    return rows
