"""Builds ESCI TFRecords: python -m tfrecords.build --examples X --products Y --output_dir Z.

Streams: the examples' keys are read and checked whole (esci_tf.data.reader.load_esci_keys:
the same checks and drop report as load_esci), the products' text goes piece by piece to a
local store (esci_tf.data.product_store), and esci_tf.records.builder.build_shards writes
Z/<split>-NNNNN-of-NNNNN.tfrecord.gz per split (train/test as in the examples file) one shard
job at a time in --workers processes (esci_tf.records.shard_jobs), each shard a batch of pairs at a
time and read back; prints a summary table and writes Z/summary.json last. What is held in
memory: README.md, "Full-size data". The flags and Z's writability are checked before any file is
read; a bad flag or input ends with one line naming it (esci_tf.cli; --verbose: the traceback).
A split gets at most one shard per query (a query's rows stay in one shard), so --num_shards
above a split's query count is capped (summary.json lists the files).
"""

import contextlib
import os
import tempfile

from absl import app

from esci_tf import beam_options, cli, cloud_paths
from esci_tf.choices import BACKBONE_NAMES
from esci_tf.command_settings import DEFAULT_TOKENIZER
from esci_tf.errors import FlagError
from trainers.flags import build_flags

FLAGS = build_flags.define_flags()  # the build's own FlagValues (trainers/flags/build_flags.py)
# The columns of the checked examples a streaming build keeps (the text is in the product store).
KEY_COLUMNS = ("example_id", "query", "query_id", "product_id", "product_locale", "product_row", "label")


def parse_tokenizer_flag(value: str) -> tuple:
    """"BACKBONE[:PATH]" -> (backbone, path or None); PATH may itself hold colons (gs://...)."""
    backbone, _, path = value.partition(":")
    if backbone not in BACKBONE_NAMES:
        raise FlagError(f"--tokenizer must be BACKBONE[:PATH] with BACKBONE one of {', '.join(BACKBONE_NAMES)}, "
                        f"got {value!r}")
    return backbone, (path or None)


def build_tfrecords(examples: str, products: str, output_dir: str, sources: str | None = None,
                    tokenizer: str = DEFAULT_TOKENIZER, max_length: int = 128, task: str = "1",
                    num_folds: int = 5, num_shards: int = 8, entity_markers: bool = False,
                    field_style: str = "text", prompt_tokens: int = 0, on_bad_rows: str = "raise",
                    label_smoothing: float = 0.0, seed: int = 0, show_progress: bool = True,
                    preprocessor=None, workers: int = 0, locales=(), runner: str | None = None,
                    pipeline_args=(), dry_run: bool = False) -> dict | str:
    """The files' splits as shards in output_dir (see the module docstring); returns the summary.

    `preprocessor`: an existing PairPreprocessor to reuse instead of building one from
    `tokenizer` (it must match the tokenizer's backbone and max_length). `workers`: processes
    that encode and write shards (0: the machine's cores, at most one per 20,000 pairs; the
    output is the same for any number). `locales`: only these locales' pairs (esci_tf.data.locales;
    empty: all), recorded in the summary's settings. `runner`: build on Apache Beam instead
    (esci_tf.records.beam_build) with `pipeline_args` (Beam's options); `dry_run`: return the
    pipeline's options and job graph instead of running it.
    """
    # gs:// access first, before the slow imports: a missing credential or bucket fails in seconds.
    if dry_run and not runner:
        raise FlagError("--dry_run describes a Beam pipeline: it needs --runner")
    paths = {"examples": examples, "products": products, "sources": sources,
             "tokenizer": tokenizer.partition(":")[2] or None}
    if runner:
        beam_options.check_runner_options(runner, list(pipeline_args), dict(paths, output_dir=output_dir), dry_run)
    if not dry_run:
        cloud_paths.check_inputs(paths)
        cloud_paths.check_output(output_dir, "output_dir")
    from esci_tf import files
    from esci_tf.data.locales import parse_locales, select_locales
    from esci_tf.data.product_store import ProductStore
    from esci_tf.data.reader import load_esci_keys, read_table
    from esci_tf.preprocessing.template import TemplateSettings
    from esci_tf.data.validation import check_product_rows
    from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from esci_tf.records.builder import build_shards, check_build_settings

    check_build_settings(max_length, num_folds, num_shards, label_smoothing)
    locales = parse_locales(locales)
    if workers < 0:
        raise FlagError(f"--workers must be 0 (the machine's cores) or more, got {workers}")
    backbone, tokenizer_path = parse_tokenizer_flag(tokenizer)
    if not dry_run:
        cli.check_writable(output_dir, "output_dir", directory=True)
    if preprocessor is None:
        try:
            tokenizer_object = load_tokenizer(backbone, tokenizer_path)
        except ValueError as error:  # no path where one is needed, no such preset
            raise FlagError(f"--tokenizer={tokenizer}: {error}") from error
        preprocessor = PairPreprocessor(tokenizer_object, backbone, max_length)
    elif (preprocessor.backbone, preprocessor.max_length) != (backbone, max_length):
        raise ValueError(
            f"the given preprocessor is ({preprocessor.backbone}, max_length {preprocessor.max_length}); "
            f"--tokenizer {tokenizer} --max_length {max_length} asks for ({backbone}, {max_length})")
    products = os.fspath(products)
    settings = dict(examples=os.fspath(examples), products=products,
                    sources=None if sources is None else os.fspath(sources), task=str(task),
                    tokenizer=tokenizer, on_bad_rows=on_bad_rows, **({"locales": list(locales)} if locales else {}))
    if runner:
        return _build_on_beam(settings, output_dir, preprocessor, field_style, prompt_tokens, entity_markers,
                              num_folds, num_shards, seed, label_smoothing, locales,
                              beam_options.pipeline_args(runner, pipeline_args), dry_run)
    with tempfile.TemporaryDirectory(prefix="esci_build_") if files.is_remote(output_dir) else \
            contextlib.nullcontext(output_dir) as store_dir:
        store = None

        def product_keys(checker):
            nonlocal store
            store, keys = ProductStore.build(products, store_dir)
            return check_product_rows(keys, products, checker)

        try:
            merged, report = load_esci_keys(examples, products, sources, task=task, on_bad_rows=on_bad_rows,
                                            product_keys=product_keys)
            merged = select_locales(merged, locales, examples)
            # Gazetteers from the whole products file, as trainers build them for prediction too.
            catalog = read_table(products, ("product_id", "product_locale", "product_brand", "product_color")) \
                if entity_markers else None
            template = TemplateSettings.for_catalog(catalog, field_style, prompt_tokens, entity_markers)
            del catalog
            # Only what the shards and the summary read: the checks are done.
            kept = merged[[c for c in KEY_COLUMNS if c in merged.columns]]
            frames = {split: kept[(merged["split"] == split).to_numpy()].reset_index(drop=True)
                      for split in sorted(merged["split"].unique(), key=lambda s: (s != "train", s))}
            del merged, kept
            return build_shards(frames, output_dir, FrameEncoder(preprocessor, template), num_shards=num_shards,
                                num_folds=num_folds, seed=seed, label_smoothing=label_smoothing, settings=settings,
                                dropped=report.to_dict(), show_progress=show_progress, store=store, workers=workers)
        finally:
            if store is not None:
                store.remove()


def _build_on_beam(settings, output_dir, preprocessor, field_style, prompt_tokens, entity_markers, num_folds,
                   num_shards, seed, label_smoothing, locales, pipeline_args, dry_run):
    """build_tfrecords on Beam: the settings the local build checks before reading the examples
    (sources file, template gazetteers) here, the rest in the pipeline; returns the summary, or
    with dry_run the options and job graph."""
    from esci_tf.data.reader import read_table
    from esci_tf.preprocessing.template import TemplateSettings
    from esci_tf.data.validation import validate_sources_file
    from esci_tf.preprocessing.frame_encoder import FrameEncoder
    from esci_tf.records import beam_build
    from esci_tf.records.summary import read_summary

    if settings["sources"] is not None and not dry_run:
        validate_sources_file(read_table(settings["sources"]), settings["sources"])
    catalog = read_table(settings["products"], ("product_id", "product_locale", "product_brand", "product_color")) \
        if entity_markers and not dry_run else None
    template = TemplateSettings.for_catalog(catalog, field_style, prompt_tokens, entity_markers)
    encoder_config = FrameEncoder(preprocessor, template).to_config()

    def stages(pipeline):
        beam_build.build_pipeline(pipeline, settings["examples"], settings["products"], output_dir, encoder_config,
                                  settings, num_folds, num_shards, seed, label_smoothing, locales)

    described = beam_build.run_or_describe(pipeline_args, dry_run, stages)
    return described if dry_run else read_summary(output_dir)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    summary = build_tfrecords(**build_flags.build_arguments(FLAGS), pipeline_args=PIPELINE_ARGS)
    if FLAGS.dry_run:
        print(summary)
        return
    from esci_tf.records.summary import format_table

    print(format_table(summary))
    print(f"summary: {FLAGS.output_dir}/summary.json")


PIPELINE_ARGS = []  # Beam's arguments of the command line (esci_tf.beam_options)

if __name__ == "__main__":
    import sys

    argv, PIPELINE_ARGS[:] = beam_options.split_pipeline_args(sys.argv, FLAGS)
    cli.run(main, "tfrecords.build", flag_values=FLAGS, argv=argv)
