"""`make demo`: synthetic ESCI data -> parquet files -> TFRecords, then the build summary.

build_demo_data is the reusable part: the training demo builds on its output.
"""

import os
import sys

from absl import app, flags

from esci_tf.data.synthetic import generate_esci
from tfrecords.pipeline import build_tfrecords
from tfrecords.summary import format_table

FLAGS = flags.FLAGS
DEFAULT_OUTPUT_DIR = os.path.join("runs", "demo")


def build_demo_data(
    output_dir: str = DEFAULT_OUTPUT_DIR,
    num_queries: int = 300,
    seed: int = 0,
    max_length: int = 64,
    num_shards: int = 2,
    task: str = "1",
    show_progress: bool = True,
    preprocessor=None,
) -> dict:
    """Writes synthetic examples/products parquet files and their TFRecords under output_dir.

    Returns paths: examples, products (parquet), tfrecord_dir, train_pattern, test_pattern,
    summary (summary.json), and the summary dict itself under "build_summary". `preprocessor`:
    an existing xlm_roberta PairPreprocessor of this max_length to reuse (see build_tfrecords).
    """
    examples, products = generate_esci(num_queries=num_queries, seed=seed)
    data_dir = os.path.join(output_dir, "data")
    tfrecord_dir = os.path.join(output_dir, "tfrecords")
    os.makedirs(data_dir, exist_ok=True)
    paths = {
        "examples": os.path.join(data_dir, "examples.parquet"),
        "products": os.path.join(data_dir, "products.parquet"),
        "tfrecord_dir": tfrecord_dir,
        "train_pattern": os.path.join(tfrecord_dir, "train-*.tfrecord.gz"),
        "test_pattern": os.path.join(tfrecord_dir, "test-*.tfrecord.gz"),
        "summary": os.path.join(tfrecord_dir, "summary.json"),
    }
    examples.to_parquet(paths["examples"], index=False)
    products.to_parquet(paths["products"], index=False)
    paths["build_summary"] = build_tfrecords(
        paths["examples"], paths["products"], tfrecord_dir, max_length=max_length, task=task,
        num_shards=num_shards, seed=seed, show_progress=show_progress, preprocessor=preprocessor,
    )
    return paths


def define_flags():
    """Command-line flags, defined only when run as a program."""
    flags.DEFINE_string("output_dir", DEFAULT_OUTPUT_DIR, "Where the demo writes its data and TFRecords.")
    flags.DEFINE_integer("num_queries", 300, "Synthetic queries to generate.")
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic data and the folds.")
    flags.DEFINE_integer("max_length", 64, "Tokens per packed pair.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    paths = build_demo_data(FLAGS.output_dir, FLAGS.num_queries, FLAGS.seed, FLAGS.max_length)
    print(format_table(paths["build_summary"]))
    for key in ("examples", "products", "train_pattern", "test_pattern", "summary"):
        print(f"{key}: {paths[key]}")
    sys.stdout.flush()


if __name__ == "__main__":
    define_flags()
    app.run(main)
