"""trainers.predict on Apache Beam (--runner=...): the pairs of an examples file scored by an
exported SavedModel (esci_tf.serving.export, trainers.export: raw fields in), written as the
local run writes them.

Stages:
1. the reading, checks and product join of the Beam build (esci_tf.records.beam_build.
   checked_pairs, with the checks of prediction input: labels optional, no pair checks), then
   checks_passed: the local run's errors in its order, or the drop report (logged);
2. score: batches of --batch_size pairs (BatchElements) through the SavedModel's serving_default
   signature in a DoFn that loads the model once per worker (setup);
3. write: the predictions in parts of PART_ROWS file rows (each part's rows in file order, in a
   temporary directory next to the output; a killed run's is removed by the next), then one
   file: the header and the parts in order (esci_tf.files.atomic_path, so the output is whole or
   absent), or with `submission` the task-1 ranking file of those rows
   (prediction_tables.submission_table); the parts are removed.

The rows, their order and columns are the local run's (prediction_tables.predictions_table: file
order, the locale selection applied); the scores are the SavedModel's, the same graph the Keras
model runs (equal to float32 rounding, tests/test_beam_predict.py).
"""

import os

import apache_beam as beam
import pandas as pd

from esci_tf.records import beam_build

PART_ROWS = 100_000  # file rows per part of the predictions
PARTS_SUFFIX = ".parts"  # the parts' directory: a temporary name next to the output (files.temporary_path)


def saved_model_dir(path: str) -> str:
    """The SavedModel of --model_dir: the directory itself when it holds saved_model.pb, else the
    newest version under it (trainers.export's base directory)."""
    import tensorflow as tf

    from esci_tf.errors import FlagError
    from esci_tf.serving import versions

    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    present = versions.versions(path)
    if not present:
        raise FlagError(f"--model_dir={path}: with --runner it is an exported SavedModel (trainers.export's "
                        "--export_dir, or one of its versions); there is no saved_model.pb nor version there")
    return os.path.join(path, str(present[-1]))


class ScoreBatch(beam.DoFn):
    """A batch of pairs -> the SavedModel's scores and class probabilities; the model is loaded
    once per worker (setup). Emits (part, (file row, predictions row))."""

    def __init__(self, saved_model: str):
        self.saved_model = saved_model
        self.signature = None
        self.locales = None

    def setup(self):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401 (registers the graph's tokenizer ops)

        from esci_tf.serving.export import served_locales

        self.signature = tf.saved_model.load(self.saved_model).signatures["serving_default"]
        self.locales = served_locales(self.saved_model)

    def process(self, batch, checked):
        import tensorflow as tf

        from esci_tf.preprocessing.template import frame_fields
        from esci_tf.prediction_tables import predictions_table
        from esci_tf.errors import DataError
        from esci_tf.rankers.base import check_frame_locales

        frame = beam_build._frame([record for _, record in batch])
        try:  # as trainers.predict refuses them; one line on the driver
            check_frame_locales(self.locales, frame, f"the model in {self.saved_model}")
        except DataError as error:
            raise beam_build.PipelineUserError(error) from error
        fields = frame_fields(frame)
        outputs = self.signature(**{name: tf.constant(list(values), tf.string) for name, values in fields.items()})
        probabilities = outputs["probabilities"].numpy() if "probabilities" in outputs else None
        table = predictions_table(frame, outputs["score"].numpy(), probabilities)
        for row, values in zip(frame.index.tolist(), table.itertuples(index=False, name=None)):
            yield row // PART_ROWS, (row, values)


def _write_part(part_rows, parts_dir: str) -> str:
    """One part's rows, in file order, as CSV lines without a header; returns its path."""
    from esci_tf import files
    from esci_tf.prediction_tables import OUTPUT_COLUMNS

    part, rows = part_rows
    rows = sorted(rows, key=lambda row: row[0])
    path = os.path.join(parts_dir, f"part-{part:08d}.csv")
    table = pd.DataFrame([values for _, values in rows], columns=list(OUTPUT_COLUMNS))
    files.write_text(path, table.to_csv(index=False, header=False))
    return path


def _finish(_, parts, checked, output: str, parts_dir: str, submission: bool) -> str:
    """The predictions file (header, then the parts in order), or with `submission` the task-1
    ranking of them; removes the parts."""
    import io

    import tensorflow as tf

    from esci_tf import files
    from esci_tf.prediction_tables import OUTPUT_COLUMNS, submission_table

    header = ",".join(OUTPUT_COLUMNS) + "\n"
    if submission:
        text = header + "".join(tf.io.gfile.GFile(path, "r").read() for path in sorted(parts))
        scores = pd.read_csv(io.StringIO(text), usecols=["query_id", "product_id", "score"],
                             dtype={"product_id": str})
        files.write_text(output, submission_table(scores).to_csv(index=False))
    else:
        with files.atomic_path(output) as temporary, tf.io.gfile.GFile(temporary, "w") as stream:
            stream.write(header)
            for path in sorted(parts):
                stream.write(tf.io.gfile.GFile(path, "r").read())
    tf.io.gfile.rmtree(parts_dir)
    return output


@beam_build._user_errors
def _checks(_, findings, rows_read, pairs, settings: dict, parts_dir: str):
    """beam_build.checks_passed (the drop report logged); removes a killed run's parts."""
    import tensorflow as tf
    from absl import logging

    dropped = beam_build.checks_passed(findings, rows_read, pairs, settings)
    if dropped["total"]:
        logging.warning("dropped rows: %s", dropped)
    if tf.io.gfile.exists(parts_dir):
        tf.io.gfile.rmtree(parts_dir)
    yield dropped


def predict_pipeline(pipeline, saved_model: str, examples: str, products: str, output: str, task: str = "1",
                     split=None, on_bad_rows: str = "raise", locales=(), batch_size: int = 128,
                     submission: bool = False):
    """Adds the scoring stages (the module docstring) to `pipeline`; `saved_model`: saved_model_dir's."""
    from esci_tf import files

    settings = beam_build.check_settings(examples, products, task, split, on_bad_rows, locales)
    pairs, checked = beam_build.checked_pairs(pipeline, settings, require_labels=False)
    parts_dir = files.temporary_path(output + PARTS_SUFFIX)
    passed = beam.pvalue.AsSingleton(pipeline | "checks start" >> beam.Create([None])
                                     | "checks" >> beam.FlatMap(_checks, *checked, settings, parts_dir))
    parts = (pairs | "batch pairs" >> beam.BatchElements(min_batch_size=1, max_batch_size=batch_size)
             | "score with the SavedModel" >> beam.ParDo(ScoreBatch(saved_model), passed)
             | "group parts" >> beam.GroupByKey()
             | "write parts" >> beam.Map(_write_part, parts_dir))
    return (pipeline | "output start" >> beam.Create([None])
            | "write output" >> beam.Map(_finish, beam.pvalue.AsList(parts), passed, output, parts_dir, submission))
