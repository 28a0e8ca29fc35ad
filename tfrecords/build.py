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

from absl import app, flags

from esci_tf import cli, cloud_paths
from esci_tf.choices import BACKBONE_NAMES
from esci_tf.errors import FlagError
from esci_tf.data.locales import HELP as LOCALES_HELP

FLAGS = flags.FLAGS
DEFAULT_TOKENIZER = "xlm_roberta"  # no path: the embedded demo SentencePiece vocabulary
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
                    preprocessor=None, workers: int = 0, locales=()) -> dict:
    """The files' splits as shards in output_dir (see the module docstring); returns the summary.

    `preprocessor`: an existing PairPreprocessor to reuse instead of building one from
    `tokenizer` (it must match the tokenizer's backbone and max_length). `workers`: processes
    that encode and write shards (0: the machine's cores, at most one per 20,000 pairs; the
    output is the same for any number). `locales`: only these locales' pairs (esci_tf.data.locales;
    empty: all), recorded in the summary's settings.
    """
    # gs:// access first, before the slow imports: a missing credential or bucket fails in seconds.
    cloud_paths.check_inputs({"examples": examples, "products": products, "sources": sources,
                              "tokenizer": tokenizer.partition(":")[2] or None})
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
            settings = dict(examples=os.fspath(examples), products=products,
                            sources=None if sources is None else os.fspath(sources), task=str(task),
                            tokenizer=tokenizer, on_bad_rows=on_bad_rows,
                            **({"locales": list(locales)} if locales else {}))
            return build_shards(frames, output_dir, FrameEncoder(preprocessor, template), num_shards=num_shards,
                                num_folds=num_folds, seed=seed, label_smoothing=label_smoothing, settings=settings,
                                dropped=report.to_dict(), show_progress=show_progress, store=store, workers=workers)
        finally:
            if store is not None:
                store.remove()


def define_flags():
    """Defines the command-line flags (only when run as a program, so importing is side-effect free)."""
    flags.DEFINE_string("examples", None, "Examples file (parquet or csv; local or gs://).", required=True)
    flags.DEFINE_string("products", None, "Products file (parquet or csv; local or gs://).", required=True)
    flags.DEFINE_string("sources", None, "Optional query sources file (query_id, source).")
    flags.DEFINE_string("output_dir", None, "Directory for the shards and summary.json.", required=True)
    flags.DEFINE_string(
        "tokenizer", DEFAULT_TOKENIZER,
        f"BACKBONE[:PATH]: backbone in {'|'.join(BACKBONE_NAMES)}; PATH a Hugging Face or "
        "keras-hub preset directory (local or gs://) or a keras-hub preset name. Plain xlm_roberta "
        "uses the embedded demo SentencePiece vocabulary.",
    )
    flags.DEFINE_integer("max_length", 128, "Tokens per packed (query, product) pair.")
    flags.DEFINE_enum("task", "1", ["1", "2", "3", "all"], "KDD Cup task whose rows to keep.")
    flags.DEFINE_integer("num_folds", 5, "Cross-validation folds of the training split (grouped by query).")
    flags.DEFINE_integer("num_shards", 8, "Shard files per split.")
    flags.DEFINE_bool("entity_markers", False, "Wrap brands/colors/sizes/models in typed entity markers.")
    flags.DEFINE_enum("field_style", "text", ["text", "tokens"], "Product field labels: words or marker tokens.")
    flags.DEFINE_integer("prompt_tokens", 0, "Trainable prompt tokens inserted by the template.")
    flags.DEFINE_enum("on_bad_rows", "raise", ["raise", "skip"], "Bad rows: stop, or drop and report them.")
    flags.DEFINE_float("label_smoothing", 0.0, "Soft labels (1 - a) * one_hot + a / 4.")
    flags.DEFINE_integer("seed", 0, "Seed of the fold assignment.")
    flags.DEFINE_list("locales", [], LOCALES_HELP)
    flags.DEFINE_integer("workers", 0, "Processes that encode and write shards in parallel; 0: the machine's "
                         "cores, at most one per 20,000 pairs. The shards are the same bytes for any number.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    names = ("examples", "products", "output_dir", "sources", "tokenizer", "max_length", "task", "num_folds",
             "num_shards", "entity_markers", "field_style", "prompt_tokens", "on_bad_rows", "label_smoothing",
             "seed", "workers", "locales")
    summary = build_tfrecords(**{name: FLAGS[name].value for name in names})
    from esci_tf.records.summary import format_table

    print(format_table(summary))
    print(f"summary: {FLAGS.output_dir}/summary.json")


if __name__ == "__main__":
    define_flags()
    cli.run(main, "tfrecords.build")
