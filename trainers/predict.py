"""Score ESCI pairs with a trained model:

    python -m trainers.predict --model_dir D --examples X --products Y --output preds.csv

--model_dir is a ranker directory: a trainers.fit --output_dir (its best model with the saved
preprocessing, so pairs are encoded as the run's TFRecords were) or a trainers.recipe R/final
(an ensemble). Writes query_id, product_id, product_locale, score, p_E, p_S, p_C, p_I per pair
(file order; the class probabilities are empty for rankers that do not classify); with
--submission, the task-1 ranking file: query_id, product_id, sorted by score (best first)
within each query, queries in file order, ties kept in file order.
"""

import sys

import numpy as np
import pandas as pd
import tensorflow as tf

from esci_tf.training.evaluation import PROB_COLUMNS

OUTPUT_COLUMNS = ("query_id", "product_id", "product_locale", "score") + PROB_COLUMNS
SUBMISSION_COLUMNS = ("query_id", "product_id")


def predictions_table(frame: pd.DataFrame, scores: np.ndarray, probs: np.ndarray | None) -> pd.DataFrame:
    """The per-pair output table (OUTPUT_COLUMNS), in the frame's order."""
    table = frame[["query_id", "product_id", "product_locale"]].reset_index(drop=True).copy()
    table["score"] = scores
    for i, column in enumerate(PROB_COLUMNS):
        table[column] = probs[:, i] if probs is not None else np.nan
    return table


def submission_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """query_id, product_id ranked by score within each query (queries in first-seen order)."""
    table = predictions.reset_index(drop=True)
    query_order = pd.Series(pd.factorize(table["query_id"])[0], index=table.index)
    ranked = table.assign(_query=query_order, _row=np.arange(len(table)))
    ranked = ranked.sort_values(["_query", "score", "_row"], ascending=[True, False, True], kind="stable")
    return ranked[list(SUBMISSION_COLUMNS)].reset_index(drop=True)


def predict(cfg) -> pd.DataFrame:
    """Score the pairs of cfg.examples and write cfg.output; returns the written table.

    --output is checked for writability first, before the model and the files are read.
    """
    from esci_tf import cloud_paths, files
    from esci_tf.cli import check_writable

    cloud_paths.check_inputs({"model_dir": cfg.model_dir, "examples": cfg.examples, "products": cfg.products})
    cloud_paths.check_output(cfg.output, "output", directory=False)
    check_writable(cfg.output, "output")
    from esci_tf.data.reader import load_esci
    from esci_tf.rankers import load_ranker
    from esci_tf.rankers.base import predict as predict_frame

    ranker = load_ranker(cfg.model_dir, cfg.batch_size)
    frame, report = load_esci(cfg.examples, cfg.products, task=cfg.task, split=cfg.split,
                              on_bad_rows=cfg.on_bad_rows, require_labels=False)
    if report.counts:
        print(f"dropped rows: {report.to_dict()}", file=sys.stderr)
    prediction = predict_frame(ranker, frame)
    table = predictions_table(frame, prediction.scores, prediction.probabilities)
    if cfg.submission:
        table = submission_table(table)
    with files.atomic_path(cfg.output) as temporary, tf.io.gfile.GFile(temporary, "w") as stream:
        table.to_csv(stream, index=False)  # local or gs://; a killed write leaves no partial file
    return table


def run_with_args(argv) -> pd.DataFrame:
    """Parse `argv` (argv[0] is the program name) as predict flags and predict."""
    from trainers.flags.predict_flags import define_flags

    flag_values = define_flags()
    flag_values.unparse_flags()
    rest = flag_values(list(argv))
    if len(rest) > 1:
        raise ValueError(f"unexpected arguments: {' '.join(rest[1:])}")
    return predict(flag_values)


def main():
    from absl import app

    from esci_tf import cli
    from trainers.flags.predict_flags import define_flags

    flag_values = define_flags()

    def run(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        table = predict(flag_values)
        print(f"wrote {len(table)} rows to {flag_values.output}")

    cli.run(run, "trainers.predict", flag_values=flag_values)


if __name__ == "__main__":
    main()
