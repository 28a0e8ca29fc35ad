"""tfrecords.build on Apache Beam (--runner=DirectRunner|DataflowRunner|FlinkRunner|SparkRunner):
the checks, shards and summary.json of esci_tf.records.builder, from a pipeline.

The stages (the only module of the build that imports Beam):
1. read: the examples and products files in pieces (reader.table_pieces: a parquet row group, or
   a whole csv file), each checked as the local reader checks a file, rows numbered in the file;
2. checks across rows: example_id and (product_id, product_locale) unique (GroupByKey); the
   per-query checks (validation.check_example_queries on batches of whole queries: query_id_conflict,
   conflicting_labels, duplicate_pair); missing products (CoGroupByKey, then reader.join_products on
   batches of product keys). Every check runs as skip and its findings (validation.Finding) meet in
   one place, which raises the first in the local order with --on_bad_rows=raise (the same line,
   naming the file and rows) or makes the drop report;
3. plan: per-query row counts -> folds (splits.query_folds) and shards (writer.query_shards), as the
   local builder assigns them;
4. write: each shard's rows in write order -> builder.frame_job -> shard_jobs.write_shard, the one
   encoding core (FieldsPreprocessor a batch at a time, a GZIP shard written atomically, read
   back), in a DoFn whose setup builds the FrameEncoder once per worker;
5. summary.json (builder.build_summary), last.

Shards are not written with beam.io.WriteToTFRecord: it chooses which record goes to which file and
in what order, and a shard holds whole queries, contiguous and in input order (the listwise reader
relies on it); writing each shard whole gives the local build's bytes, shard names and summary.
Stages 1 and 2 (`checked_pairs`, `checks_passed`) are also the start of trainers.predict on Beam
(esci_tf.serving.beam_predict). A file-level error (a missing column, a non-integer id) stops the
piece that finds it, naming the file and the piece's rows (the local reader names the first rows of
the whole file). A user error inside the pipeline reaches the driver as the runner's
exception; `run_pipeline` turns it back into the one-line DataError or FlagError.
"""

import logging
import os
import re

import apache_beam as beam
import numpy as np
import pandas as pd

from esci_tf.errors import DataError, FlagError

_ERROR = re.compile(r"ESCI_ERROR<<(DataError|FlagError)>>(.*?)<<ESCI_ERROR", re.S)
KEY_BATCH = 512  # queries or product keys checked together (any grouping gives the same result)


class PipelineUserError(RuntimeError):
    """A DataError or FlagError raised on a worker, marked so the driver finds it in the runner's error."""

    def __init__(self, error: ValueError):
        super().__init__(f"ESCI_ERROR<<{type(error).__name__}>>{error}<<ESCI_ERROR")


def _user_errors(function):
    """A generator function with its DataError / FlagError marked for the driver (PipelineUserError)."""

    def wrapped(*args, **kwargs):
        try:
            yield from function(*args, **kwargs)
        except (DataError, FlagError) as error:
            raise PipelineUserError(error) from error

    wrapped.__name__ = function.__name__
    return wrapped


def user_error_of(error: BaseException):
    """The DataError / FlagError a PipelineUserError in a runner's exception carried, or None."""
    match = _ERROR.search(str(error))
    if match is None:
        return None
    return (DataError if match[1] == "DataError" else FlagError)(match[2])


class _WithoutUserErrors(logging.Filter):
    """Drops the runner's log records of a user error (Beam's bundle processor logs a worker's
    exception with its traceback before the driver sees it): the driver prints its one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _ERROR.search(record.getMessage()) is None


def run_pipeline(pipeline) -> None:
    """Runs and waits; a user error raised on a worker comes back as itself (one line, no logged
    traceback); any other error is logged and raised as the runner reports it."""
    quiet = _WithoutUserErrors()
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        pipeline.run().wait_until_finish()
    except Exception as error:  # the runner's wrapping of a worker's exception
        user_error = user_error_of(error)
        if user_error is None:
            raise
        raise user_error from None
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def _records(frame: pd.DataFrame) -> list:
    """(file row, {column: value}) of each row."""
    return list(zip(frame.index.tolist(), frame.to_dict("records")))


def _frame(records) -> pd.DataFrame:
    """The frame of _records, in file row order."""
    records = sorted(records, key=lambda record: record[0])
    return pd.DataFrame([values for _, values in records], index=pd.Index([row for row, _ in records]))


# -- stage 1: pieces of the files
@_user_errors
def _examples_piece(piece, task: str, split, require_labels: bool):
    """A piece of the examples file checked as load_esci checks a file; outputs: the rows of the
    task that pass the one-row checks, keyed by query_id; "ids" (example_id, row) of every row;
    "findings"; "read" (its row count)."""
    from esci_tf.data.reader import read_piece, select_task
    from esci_tf.data.validation import DropReport, RowChecker, check_example_values, validate_examples_file

    path = piece[0]
    frame = validate_examples_file(read_piece(piece), path, require_labels, unique_ids=False)
    yield beam.pvalue.TaggedOutput("read", len(frame))
    for example_id, row in zip(frame["example_id"].tolist(), frame.index.tolist()):
        yield beam.pvalue.TaggedOutput("ids", (example_id, row))
    found = []
    frame = check_example_values(select_task(frame, task, split), path, RowChecker("skip", DropReport(), found),
                                 require_labels)
    for finding in found:
        yield beam.pvalue.TaggedOutput("findings", finding)
    for row, values in _records(frame):
        yield values["query_id"], (row, values)


@_user_errors
def _products_piece(piece):
    """A piece of the products file checked as the local build checks one; outputs: its rows of
    known locale keyed by (product_id, product_locale); "keys" (key, row) of every row; "findings"."""
    from esci_tf.data.reader import read_piece
    from esci_tf.data.validation import DropReport, RowChecker, check_product_rows, validate_product_columns

    path = piece[0]
    frame = validate_product_columns(read_piece(piece), path)
    for key, row in zip(zip(frame["product_id"].tolist(), frame["product_locale"].tolist()), frame.index.tolist()):
        yield beam.pvalue.TaggedOutput("keys", (key, row))
    found = []
    frame = check_product_rows(frame, path, RowChecker("skip", DropReport(), found))
    for finding in found:
        yield beam.pvalue.TaggedOutput("findings", finding)
    for row, values in _records(frame):
        yield (values["product_id"], values["product_locale"]), (row, values)


def _duplicates(key_rows, columns):
    """("duplicates", columns, rows frame) of a key held by more than one row."""
    key, rows = key_rows
    rows = list(rows)
    if len(rows) > 1:
        key = key if isinstance(key, tuple) else (key,)
        yield "duplicates", tuple(columns), pd.DataFrame([key] * len(rows), index=pd.Index(rows), columns=columns)


# -- stage 2: checks across rows
@_user_errors
def _query_checks(batch, path: str, require_labels: bool):
    """Whole queries' rows -> the per-query checks; outputs: the rows that pass keyed by
    (product_id, product_locale), and "findings"."""
    from esci_tf.data.validation import DropReport, RowChecker, check_example_queries

    frame = _frame([record for _, rows in batch for record in rows])
    found = []
    frame = check_example_queries(frame, path, RowChecker("skip", DropReport(), found), require_labels)
    for finding in found:
        yield beam.pvalue.TaggedOutput("findings", finding)
    for row, values in _records(frame):
        yield (values["product_id"], values["product_locale"]), (row, values)


@_user_errors
def _join(batch, examples_path: str, products_path: str, locales: tuple):
    """Product keys' examples and products -> reader.join_products; outputs: the merged rows (of
    `locales`, all when empty) keyed by (split, query_id), "findings", and "pairs" (the pairs
    before the locale selection, with their locales)."""
    from esci_tf.data.reader import join_products
    from esci_tf.data.validation import PRODUCT_COLUMNS, DropReport, RowChecker

    examples = _frame([record for _, joined in batch for record in joined["examples"]])
    products = [values for _, joined in batch for _, values in joined["products"]]
    products = pd.DataFrame(products, columns=list(PRODUCT_COLUMNS))
    found = []
    merged = join_products(examples, products, examples_path, products_path, RowChecker("skip", DropReport(), found))
    for finding in found:
        yield beam.pvalue.TaggedOutput("findings", finding)
    yield beam.pvalue.TaggedOutput("pairs", (len(merged), set(merged["product_locale"])))
    if locales:
        merged = merged[merged["product_locale"].isin(locales).to_numpy()]
    for row, values in _records(merged):
        yield (values["split"], values["query_id"]), (row, values)


def _has_examples(key_joined):
    return any(True for _ in key_joined[1]["examples"])


# -- stage 3: the plan
def _query_size(key_rows):
    """((split, query_id), (rows, first row, its locale))."""
    key, rows = key_rows
    rows = sorted(rows, key=lambda record: record[0])
    return key, (len(rows), rows[0][0], rows[0][1]["product_locale"])


def _check_findings(findings, on_bad_rows: str, examples: str, products: str) -> dict:
    """Raises the error a local build raises first (file-level duplicates always; row reasons with
    --on_bad_rows=raise); returns the drop report (DropReport.to_dict) otherwise."""
    from esci_tf.data.validation import (EXAMPLE_QUERY_REASONS, EXAMPLE_VALUE_REASONS, MISSING_PRODUCT,
                                         PRODUCT_UNKNOWN_LOCALE, DropReport, check_unique)

    duplicates = {}
    by_reason = {}
    for finding in findings:
        if isinstance(finding, tuple):
            duplicates.setdefault(finding[1], []).append(finding[2])
        else:
            by_reason.setdefault(finding.reason, []).append(finding)
    report = DropReport()
    order = [("example_id",), *EXAMPLE_VALUE_REASONS, *EXAMPLE_QUERY_REASONS, ("product_id", "product_locale"),
             PRODUCT_UNKNOWN_LOCALE, MISSING_PRODUCT]
    for step in order:
        if isinstance(step, tuple):
            if step in duplicates:
                check_unique(pd.concat(duplicates[step]).sort_index(), list(step),
                             examples if step == ("example_id",) else products)
            continue
        if step not in by_reason:
            continue
        first = by_reason[step][0]
        rows = pd.concat([finding.rows for finding in by_reason[step]]).sort_index()
        merged = type(first)(first.reason, first.column, first.path, first.message, first.id_column, rows)
        if on_bad_rows == "raise":
            raise merged.error()
        report.add(step, rows[first.id_column].tolist())
    return report.to_dict()


def checks_passed(findings, rows_read, pairs, settings: dict) -> dict:
    """The drop report (DropReport.to_dict) of checked_pairs' outputs as AsList side inputs, once
    the checks pass: the local reader's errors in its order (_check_findings), no pairs left
    (validation.check_has_pairs), a --locales locale without pairs (locales.select_locales)."""
    from esci_tf.data.locales import select_locales
    from esci_tf.data.validation import DropReport, check_has_pairs

    examples = settings["examples"]
    dropped = _check_findings(findings, settings["on_bad_rows"], examples, settings["products"])
    report = DropReport(dict(dropped["counts"]), dict(dropped["ids"]))
    num_pairs = sum(n for n, _ in pairs)
    check_has_pairs(pd.DataFrame({"pair": np.zeros(num_pairs)}), examples, sum(rows_read), settings["task"],
                    settings["split"], report)
    present = sorted(set().union(*(locales for _, locales in pairs)))
    select_locales(pd.DataFrame({"product_locale": present}), settings["locales"], examples)
    return dropped


@_user_errors
def _plan(_, findings, rows_read, pairs, sizes, settings: dict) -> dict:
    """{"shard": {(split, query_id): (shard, fold)}, "shards": {split: count}, "dropped": report}
    after the checks pass; removes the previous build from output_dir (nothing is written before)."""
    from esci_tf.data.splits import query_folds
    from esci_tf.records.builder import TEST_FOLD, check_fold_queries, remove_previous_build, shards_for
    from esci_tf.records.writer import query_shards

    dropped = checks_passed(findings, rows_read, pairs, settings)
    table = pd.DataFrame([(split, query_id, n, locale) for (split, query_id), (n, _, locale) in sizes],
                         columns=["split", "query_id", "rows", "locale"])
    plan = {"shard": {}, "shards": {}, "dropped": dropped}
    for split, queries in table.groupby("split", sort=False):
        queries = queries.sort_values("query_id").set_index("query_id")
        shards = shards_for(split, pd.DataFrame({"query_id": queries.index}), settings["num_shards"])
        shard_of = query_shards(queries.index.to_numpy(), queries["rows"].to_numpy(), shards)
        if split == "train":
            check_fold_queries(len(queries), settings["num_folds"])
            fold_of = query_folds(queries[["rows", "locale"]], settings["num_folds"], settings["seed"])
        else:
            fold_of = {}
        plan["shards"][split] = shards
        for query_id, shard in zip(queries.index.tolist(), shard_of.tolist()):
            plan["shard"][(split, query_id)] = (shard, fold_of.get(query_id, TEST_FOLD))
    remove_previous_build(settings["output_dir"])
    yield plan


def _to_shard(key_rows, plan):
    (split, query_id), rows = key_rows
    shard, fold = plan["shard"][(split, query_id)]
    for row, values in rows:
        yield (split, shard), (row, dict(values, fold=fold))


# -- stage 4: writing
class WriteShard(beam.DoFn):
    """A shard's rows -> builder.frame_job -> shard_jobs.write_shard with this worker's FrameEncoder
    (built once, in setup); emits what the summary needs of the shard."""

    def __init__(self, encoder_config: dict, output_dir: str, label_smoothing: float):
        self.encoder_config = encoder_config
        self.output_dir = output_dir
        self.label_smoothing = label_smoothing
        self.encoder = None

    def setup(self):
        from esci_tf.preprocessing.frame_encoder import FrameEncoder

        self.encoder = FrameEncoder.from_config(self.encoder_config)

    def process(self, key_rows, plan):
        from esci_tf.records import schema
        from esci_tf.records.builder import frame_job
        from esci_tf.records.shard_jobs import write_shard

        (split, shard), rows = key_rows
        frame = _frame(rows)
        # Write order (writer.shard_rows): by query id, a query's rows in input (file) order.
        frame = frame.iloc[np.lexsort((frame.index.to_numpy(), frame["query_id"].to_numpy()))]
        path = os.path.join(self.output_dir, schema.shard_name(split, shard, plan["shards"][split]))
        job = frame_job(path, frame, folds=frame["fold"].to_numpy(), label_smoothing=self.label_smoothing)
        cut = write_shard(job, self.encoder)
        yield split, shard, path, frame[["query_id", "product_locale", "label"]].reset_index(drop=True), cut


# -- stage 5: summary.json
def _summary(_, shards, plan, output_dir: str, settings: dict, build: dict, encoder_config: dict) -> str:
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from esci_tf.records import summary as summary_lib
    from esci_tf.records.builder import build_summary

    frames, cut, counts = {}, {}, {}
    for split in sorted(plan["shards"], key=lambda s: (s != "train", s)):
        pieces = sorted((shard for shard in shards if shard[0] == split), key=lambda shard: shard[1])
        frames[split] = pd.concat([piece[3] for piece in pieces], ignore_index=True)
        cut[split] = np.concatenate([piece[4] for piece in pieces])
        counts[split] = {piece[2]: len(piece[3]) for piece in pieces}
    summary = build_summary(frames, cut, counts, FrameEncoder.from_config(encoder_config), build["num_folds"],
                            build["seed"], build["num_shards"], build["label_smoothing"], settings, plan["dropped"])
    return summary_lib.write_summary(summary, output_dir)


def build_pipeline(pipeline, examples: str, products: str, output_dir: str, encoder_config: dict, settings: dict,
                   num_folds: int, num_shards: int, seed: int, label_smoothing: float, locales=()):
    """Adds the build's stages (see the module docstring) to `pipeline`; `settings`: the summary's
    (tfrecords.build's: files, task, tokenizer, on_bad_rows, locales)."""
    build = dict(num_folds=num_folds, num_shards=num_shards, seed=seed, label_smoothing=label_smoothing)
    plan_settings = dict(build, output_dir=output_dir, **check_settings(examples, products, settings["task"], None,
                                                                        settings["on_bad_rows"], locales))
    pairs, checked = checked_pairs(pipeline, plan_settings, require_labels=True)
    by_query = pairs | "group pairs by query" >> beam.GroupByKey()
    sizes = by_query | "query sizes" >> beam.Map(_query_size)
    plan = (pipeline | "plan start" >> beam.Create([None])
            | "checks, folds and shards" >> beam.FlatMap(_plan, *checked, beam.pvalue.AsList(sizes), plan_settings))
    plan_view = beam.pvalue.AsSingleton(plan)
    shards = (by_query | "assign shards" >> beam.FlatMap(_to_shard, plan_view)
              | "group shards" >> beam.GroupByKey()
              | "encode and write shards" >> beam.ParDo(WriteShard(encoder_config, output_dir, label_smoothing),
                                                       plan_view))
    return (pipeline | "summary start" >> beam.Create([None])
            | "summary.json" >> beam.Map(_summary, beam.pvalue.AsList(shards), plan_view, output_dir, settings, build,
                                         encoder_config))


def check_settings(examples: str, products: str, task: str, split, on_bad_rows: str, locales) -> dict:
    """What checked_pairs and checks_passed read: the files and the selection of rows."""
    return dict(examples=examples, products=products, task=str(task), split=split, on_bad_rows=on_bad_rows,
                locales=tuple(locales))


def checked_pairs(pipeline, settings: dict, require_labels: bool) -> tuple:
    """Stages 1 and 2 (the module docstring): (the checked, joined pairs keyed by (split,
    query_id), the AsList side inputs that checks_passed takes). `settings`: check_settings'."""
    from esci_tf.data.reader import table_pieces

    examples, products, locales = settings["examples"], settings["products"], settings["locales"]
    pieces = _user_errors(lambda path: iter(table_pieces(path)))
    examples_out = (pipeline | "examples file" >> beam.Create([examples]) | "examples pieces" >> beam.FlatMap(pieces)
                    | "spread examples" >> beam.Reshuffle()
                    | "read and check examples" >> beam.FlatMap(_examples_piece, settings["task"], settings["split"],
                                                                require_labels)
                    .with_outputs("read", "ids", "findings", main="rows"))
    products_out = (pipeline | "products file" >> beam.Create([products]) | "products pieces" >> beam.FlatMap(pieces)
                    | "spread products" >> beam.Reshuffle()
                    | "read and check products" >> beam.FlatMap(_products_piece)
                    .with_outputs("keys", "findings", main="rows"))
    duplicate_ids = (examples_out["ids"] | "group example ids" >> beam.GroupByKey()
                     | "duplicate example ids" >> beam.FlatMap(_duplicates, ["example_id"]))
    duplicate_keys = (products_out["keys"] | "group product keys" >> beam.GroupByKey()
                      | "duplicate product keys" >> beam.FlatMap(_duplicates, ["product_id", "product_locale"]))
    queries = (examples_out["rows"] | "group queries" >> beam.GroupByKey()
               | "batch queries" >> beam.BatchElements(min_batch_size=1, max_batch_size=KEY_BATCH)
               | "check queries" >> beam.FlatMap(_query_checks, examples, require_labels)
               .with_outputs("findings", main="rows"))
    joined = ({"examples": queries["rows"], "products": products_out["rows"]} | "join products" >> beam.CoGroupByKey()
              | "judged products" >> beam.Filter(_has_examples)
              | "batch product keys" >> beam.BatchElements(min_batch_size=1, max_batch_size=KEY_BATCH)
              | "check and join" >> beam.FlatMap(_join, examples, products, tuple(locales))
              .with_outputs("findings", "pairs", main="rows"))
    findings = ((examples_out["findings"], products_out["findings"], duplicate_ids, duplicate_keys, queries["findings"],
                 joined["findings"]) | "all findings" >> beam.Flatten())
    return joined["rows"], (beam.pvalue.AsList(findings), beam.pvalue.AsList(examples_out["read"]),
                            beam.pvalue.AsList(joined["pairs"]))


def job_graph(pipeline) -> str:
    """The pipeline's top-level transforms in order, each with the transforms it reads (side inputs
    in brackets): what a runner would be given, without running it."""
    nodes = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            self.visit_transform(node)

        def visit_transform(self, node):
            if node.parent is not None and node.parent.full_label == "" and node.full_label:
                nodes.append(node)

    pipeline.visit(Visitor())

    def top(producer):
        while producer.parent is not None and producer.parent.full_label != "":
            producer = producer.parent
        return producer.full_label

    lines = []
    for node in nodes:
        reads = sorted({top(value.producer) for value in node.inputs if value.producer is not None})
        sides = sorted({top(side.pvalue.producer) for side in node.side_inputs})
        source = ", ".join(reads) + (f" [{', '.join(sides)}]" if sides else "")
        lines.append(f"  {node.full_label}" + (f"  <- {source}" if source else ""))
    return "\n".join(lines)


def describe(pipeline, options) -> str:
    """--dry_run's text: the pipeline options set, then the job graph."""
    settings = options.get_all_options(drop_default=True, retain_unknown_options=True)
    shown = "\n".join(f"  --{name}={value}" for name, value in sorted(settings.items()))
    return f"pipeline options:\n{shown}\njob graph ({len(job_graph(pipeline).splitlines())} transforms):\n" \
           f"{job_graph(pipeline)}"


def run_or_describe(pipeline_args: list, dry_run: bool, add_stages) -> str | None:
    """A pipeline of PipelineOptions(pipeline_args) with add_stages(pipeline) applied: run to the end
    (run_pipeline), or with dry_run described (returned, nothing submitted)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(pipeline_args)
    if dry_run:  # the graph alone: no runner's validation, which for Dataflow may ask Cloud Storage
        pipeline = beam.Pipeline(runner=beam.runners.DirectRunner(), options=options)
        add_stages(pipeline)
        return describe(pipeline, options)
    pipeline = beam.Pipeline(options=options)
    add_stages(pipeline)
    run_pipeline(pipeline)
    return None
