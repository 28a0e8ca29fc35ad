"""Builds ESCI TFRecords: python -m tfrecords.build --examples X --products Y --output_dir Z.

Writes Z/<split>-NNNNN-of-NNNNN.tfrecord.gz per split (train/test as in the examples file),
checks every shard by reading it back, prints a summary table and writes Z/summary.json.
"""

import sys

from absl import app, flags

from esci_tf.data.errors import DataError
from tfrecords.pipeline import DEFAULT_TOKENIZER, build_tfrecords
from tfrecords.summary import format_table

FLAGS = flags.FLAGS


def define_flags():
    """Defines the command-line flags (only when run as a program, so importing is side-effect free)."""
    flags.DEFINE_string("examples", None, "Examples file (parquet or csv; local or gs://).", required=True)
    flags.DEFINE_string("products", None, "Products file (parquet or csv; local or gs://).", required=True)
    flags.DEFINE_string("sources", None, "Optional query sources file (query_id, source).")
    flags.DEFINE_string("output_dir", None, "Directory for the shards and summary.json.", required=True)
    flags.DEFINE_string(
        "tokenizer", DEFAULT_TOKENIZER,
        "BACKBONE[:PATH]: backbone in bert|xlm_roberta|deberta_v3|rembert; PATH a Hugging Face or "
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        summary = _build_from_flags()
    except (DataError, ValueError, FileNotFoundError) as error:
        # Bad input or flag: the message names the file and row, or the flag; no traceback.
        sys.exit(f"tfrecords.build: {type(error).__name__}: {error}")
    print(format_table(summary))
    print(f"summary: {FLAGS.output_dir}/summary.json")


def _build_from_flags() -> dict:
    return build_tfrecords(
        examples=FLAGS.examples,
        products=FLAGS.products,
        output_dir=FLAGS.output_dir,
        sources=FLAGS.sources,
        tokenizer=FLAGS.tokenizer,
        max_length=FLAGS.max_length,
        task=FLAGS.task,
        num_folds=FLAGS.num_folds,
        num_shards=FLAGS.num_shards,
        entity_markers=FLAGS.entity_markers,
        field_style=FLAGS.field_style,
        prompt_tokens=FLAGS.prompt_tokens,
        on_bad_rows=FLAGS.on_bad_rows,
        label_smoothing=FLAGS.label_smoothing,
        seed=FLAGS.seed,
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
