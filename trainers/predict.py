"""Score ESCI pairs with a trained model:

    python -m trainers.predict --model_dir D --examples X --products Y --output preds.csv

--model_dir is a ranker directory: a trainers.fit --output_dir (its best model with the saved
preprocessing, so pairs are encoded as the run's TFRecords were) or a trainers.recipe R/final
(an ensemble). Writes query_id, product_id, product_locale, score, p_E, p_S, p_C, p_I per pair
(file order; the class probabilities are empty for rankers that do not classify); with
--submission, the task-1 ranking file: query_id, product_id, sorted by score (best first)
within each query, queries in file order, ties kept in file order. --locales=us,jp scores only
those locales' pairs; a model trained with --locales refuses pairs of another locale (one line
naming the locale and the model directory): give it its locales. With --task 2 --submission, the
task-2 file (example_id, esci_label: exact / substitute / complement / irrelevant, the KDD Cup
2022's values), with --task 3 --submission the task-3 file (example_id, substitute_label:
substitute / no_substitute), in file order, decided from the class probabilities by the model
directory's decisions.json (a trainers.recipe R/final has one) or else by argmax
(esci_tf.decisions); a ranker without class probabilities (BM25, ...) refuses them.

--runtime=tflite (or tflite_int8) scores with the TFLite models that trainers.export --tflite
wrote (LiteRT with XNNPACK; esci_tf.rankers.tflite): --model_dir is then that export's version
directory (<export_dir>/<version>), and the output is the same file.

The pairs stream through in --chunk_size pieces with bounded memory, and a killed run started
again with the same command continues where it stopped (see `predict`; BUILD.md, "What is
guaranteed after a crash").
"""

import os
import sys

import numpy as np
import pandas as pd

from esci_tf.errors import FlagError
from esci_tf.labels import PROB_COLUMNS
from esci_tf.prediction_tables import OUTPUT_COLUMNS, predictions_table, submission_table  # noqa: F401


def predict(cfg) -> int:
    """Score the pairs of cfg.examples and write cfg.output; returns the number of rows written.

    --output is checked for writability first, before the model and the files are read. The
    pairs stream: the examples' keys are read and checked whole (ids, queries, labels: what the
    row checks compare across rows), the products' text goes to a local store piece by piece
    (esci_tf.data.product_store), and --chunk_size pairs at a time are joined with their text,
    scored and appended to the output's partial file (esci_tf.resumable_csv), so memory does not
    grow with the number of pairs, and a killed run started again with the same command continues
    after its last complete chunk and writes the same file. --submission ranks the finished
    scores (query ids, product ids and scores only) into the ranking file, or with --task 2 or 3
    decides each pair from its finished class probabilities (`decision_rule`), its example_id
    taken from the keys (the partial file's rows are the keys' rows, in order).
    """
    from esci_tf import cloud_paths
    from esci_tf.cli import check_writable
    from esci_tf.command_settings import PredictSettings
    from esci_tf.settings import INPUT, check_values, declared, names

    settings = declared(PredictSettings)
    check_values(settings, {item.name: getattr(cfg, item.name) for item in settings})  # choices, bounds
    if cfg.runner or cfg.dry_run:
        return predict_on_beam(cfg, PIPELINE_ARGS)
    cloud_paths.check_inputs({name: getattr(cfg, name) for name in names(settings, INPUT)})
    cloud_paths.check_output(cfg.output, "output", directory=False)
    check_writable(cfg.output, "output")
    from esci_tf import decisions, files
    from esci_tf.data.locales import parse_locales, select_locales
    from esci_tf.data.product_store import ProductStore, read_fields
    from esci_tf.data.reader import load_esci_keys
    from esci_tf.data.validation import check_product_rows
    from esci_tf.rankers import load_ranker
    from esci_tf.rankers.base import check_locales, predict as predict_frame
    from esci_tf.resumable_csv import ResumableCSV, partial_path

    locales = parse_locales(cfg.locales)
    ranker = load_runtime_ranker(cfg) if cfg.runtime != "keras" else load_ranker(cfg.model_dir, cfg.batch_size)
    rule = decision_rule(cfg, ranker)
    store = None

    def product_keys(checker):
        nonlocal store
        store, keys = ProductStore.build(cfg.products, os.path.dirname(partial_path(cfg.output)) or ".",
                                         name=os.path.basename(cfg.output) + ".products.bin")
        return check_product_rows(keys, cfg.products, checker)

    try:
        keys, report = load_esci_keys(cfg.examples, cfg.products, task=cfg.task, split=cfg.split,
                                      on_bad_rows=cfg.on_bad_rows, require_labels=False, product_keys=product_keys)
        keys = select_locales(keys, locales, cfg.examples).reset_index(drop=True)
        check_locales(ranker, keys)  # before anything is scored
        if report.counts:
            print(f"dropped rows: {report.to_dict()}", file=sys.stderr)
        writer = ResumableCSV(cfg.output, run_identity(cfg))
        spans = store.spans(keys["product_row"].to_numpy(np.int64))
        for start in range(writer.rows_done, len(keys), cfg.chunk_size):
            frame = keys.iloc[start:start + cfg.chunk_size].reset_index(drop=True)
            frame = frame.assign(**read_fields(store.path, spans[start:start + cfg.chunk_size]))
            prediction = predict_frame(ranker, frame)
            if rule is not None and prediction.probabilities is None:
                raise FlagError(_no_probabilities(cfg))
            writer.append(predictions_table(frame, prediction.scores, prediction.probabilities))
    finally:
        if store is not None:
            store.remove()
    if not cfg.submission:
        writer.finish()
        return len(keys)
    if rule is not None:
        probabilities = pd.read_csv(writer.partial, usecols=list(PROB_COLUMNS))[list(PROB_COLUMNS)].to_numpy()
        table = decisions.submission_table(keys["example_id"].to_numpy(), probabilities, rule, cfg.task)
    else:
        scores = pd.read_csv(writer.partial, usecols=["query_id", "product_id", "score"], dtype={"product_id": str})
        table = submission_table(scores)
    files.write_text(cfg.output, table.to_csv(index=False))
    writer.discard()
    return len(table)


# -- Apache Beam (issue 27)
PIPELINE_ARGS = []  # Beam's arguments of the command line (esci_tf.beam_options)


def predict_on_beam(cfg, pipeline_args) -> int:
    """`predict` on Beam (esci_tf.serving.beam_predict): the predictions or the task-1 submission;
    returns the rows written (0 with --dry_run, which prints the options and job graph instead)."""
    from esci_tf import beam_options, cloud_paths
    from esci_tf.cli import check_writable
    from esci_tf.data.locales import parse_locales

    if not cfg.runner:
        raise FlagError("--dry_run describes a Beam pipeline: it needs --runner")
    from esci_tf import decisions

    if cfg.submission and cfg.task in decisions.TASKS:
        raise FlagError(f"--runner: --task={cfg.task} --submission is the local run's (drop --runner); "
                        "on Beam, the predictions or the task-1 submission")
    paths = {"model_dir": cfg.model_dir, "examples": cfg.examples, "products": cfg.products, "output": cfg.output}
    beam_options.check_runner_options(cfg.runner, list(pipeline_args), paths, cfg.dry_run)
    if not cfg.dry_run:
        cloud_paths.check_inputs({name: path for name, path in paths.items() if name != "output"})
        cloud_paths.check_output(cfg.output, "output", directory=False)
        check_writable(cfg.output, "output")
    from esci_tf.serving import beam_predict
    from esci_tf.records.beam_build import run_or_describe

    model = cfg.model_dir if cfg.dry_run else beam_predict.saved_model_dir(cfg.model_dir)
    locales = parse_locales(cfg.locales)

    def stages(pipeline):
        beam_predict.predict_pipeline(pipeline, model, cfg.examples, cfg.products, cfg.output, cfg.task, cfg.split,
                                      cfg.on_bad_rows, locales, cfg.batch_size, cfg.submission)

    described = run_or_describe(beam_options.pipeline_args(cfg.runner, pipeline_args), cfg.dry_run, stages)
    if cfg.dry_run:
        print(described)
        return 0
    import tensorflow as tf

    with tf.io.gfile.GFile(cfg.output, "r") as stream:
        return sum(1 for _ in stream) - 1


def load_runtime_ranker(cfg):
    """The ranker of --runtime=tflite / tflite_int8: the TFLite models of the export version
    directory --model_dir (esci_tf.rankers.tflite); one line naming the path and the flags when
    it holds none."""
    from esci_tf.rankers.tflite import RUNTIMES, TFLiteRanker

    return TFLiteRanker.load(cfg.model_dir, RUNTIMES[cfg.runtime])


def _no_probabilities(cfg) -> str:
    from esci_tf.rankers import ranker_kind

    return (f"--task={cfg.task} --submission decides from class probabilities, and the {ranker_kind(cfg.model_dir)} "
            f"ranker in --model_dir={cfg.model_dir} has none")


def decision_rule(cfg, ranker):
    """The task 2/3 decision rule (None for the other runs): the model directory's
    decisions.json, else argmax; says which on stdout. FlagError when the ranker does not classify."""
    from esci_tf import decisions
    from esci_tf.rankers.base import classifies

    if not (cfg.submission and cfg.task in decisions.TASKS):
        return None
    if not classifies(ranker):
        raise FlagError(_no_probabilities(cfg))
    rule = decisions.load(cfg.model_dir)
    if rule is None:
        print(f"task {cfg.task} decisions: argmax of the class probabilities (no {decisions.DECISIONS_FILE} "
              f"in {cfg.model_dir})", flush=True)
        return decisions.DecisionRule()
    print(f"task {cfg.task} decisions: {os.path.join(cfg.model_dir, decisions.DECISIONS_FILE)} "
          f"({rule.describe()})", flush=True)
    return rule


def run_identity(cfg) -> dict:
    """What a partial predictions file must have been written with to be continued: the model
    directory's files (names and sizes), the input files' content, and the flags that change
    which rows are scored or how."""
    import tensorflow as tf

    from esci_tf import files
    from esci_tf.data.locales import parse_locales

    model = [(os.path.relpath(os.path.join(root, name), cfg.model_dir), tf.io.gfile.stat(os.path.join(root, name)).length)
             for root, _, names in tf.io.gfile.walk(cfg.model_dir) for name in names]
    return {"model_dir": os.fspath(cfg.model_dir), "model_files": sorted(model),
            "examples": files.fingerprint(cfg.examples), "products": files.fingerprint(cfg.products),
            "task": cfg.task, "split": cfg.split, "on_bad_rows": cfg.on_bad_rows, "batch_size": cfg.batch_size,
            "chunk_size": cfg.chunk_size, **({"locales": list(parse_locales(cfg.locales))} if cfg.locales else {}),
            **({"runtime": cfg.runtime} if cfg.runtime != "keras" else {})}


def run_with_args(argv) -> pd.DataFrame:
    """Parse `argv` (argv[0] is the program name) as predict flags and predict; returns the
    written file read back (for tests and small inputs)."""
    from trainers.flags.predict_flags import define_flags

    flag_values = define_flags()
    flag_values.unparse_flags()
    rest = flag_values(list(argv))
    if len(rest) > 1:
        raise ValueError(f"unexpected arguments: {' '.join(rest[1:])}")
    predict(flag_values)
    return pd.read_csv(flag_values.output, dtype={"product_id": str})


def main():
    from absl import app

    from esci_tf import cli
    from trainers.flags.predict_flags import define_flags

    flag_values = define_flags()
    from esci_tf import beam_options

    argv, PIPELINE_ARGS[:] = beam_options.split_pipeline_args(sys.argv, flag_values)

    def run(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        rows = predict(flag_values)
        print(f"wrote {rows} rows to {flag_values.output}")

    cli.run(run, "trainers.predict", flag_values=flag_values, argv=argv)


if __name__ == "__main__":
    main()
