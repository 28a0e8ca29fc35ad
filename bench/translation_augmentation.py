"""Demo NDCG with and without translation augmentation, end to end and offline:

    python -m bench.translation_augmentation --seeds 0,1,2     # `make demo-augment`: --seeds 0

1. the demo's generated data (esci_tf.data.synthetic, --num_queries, data seed 0) as files;
2. its translation table from the generator's aligned us/es/jp word lists
   (python -m trainers.demo_translation);
3. python -m trainers.translate --backend table: every training pair into the other two locales;
4. per seed, python -m trainers.fit --flagfile=trainers/flags/demo.flags on the files, three
   arms with the same eval queries and settings: `plain` (no augmentation), `augmented`
   (--augment_examples/--augment_products: the same --epochs over about 2.6 times the pairs, so
   2.6 times the steps) and `plain_same_steps` (no augmentation, --steps set to the augmented
   run's: tells more data from more updates).
Writes <output_dir>/results.json and prints a table of eval NDCG (overall and per locale).
A finished arm's run directory is reused (trainers.fit trains nothing on a finished run).
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

from esci_tf import cli

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_FLAGS = os.path.join(REPO, "trainers", "flags", "demo.flags")


def define_flags():
    flags.DEFINE_string("output_dir", "runs/augment_demo", "Where the data, translations and runs go.")
    flags.DEFINE_list("seeds", ["0"], "Training seeds (each trains both arms).")
    flags.DEFINE_integer("num_queries", 300, "Generated demo queries (the demo's 300).")
    flags.DEFINE_list("extra_fit_flags", [], "More trainers.fit flags for both arms, e.g. --epochs=2.")


def _run(args, what: str) -> None:
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)
    if completed.returncode:
        raise RuntimeError(f"{what} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-3000:]}")
    print(f"{what}: {time.perf_counter() - start:.0f} s", flush=True)


def prepare(root: str, num_queries: int) -> dict:
    """The demo files, their translation table and the translated pairs (reused when present)."""
    from esci_tf.data.synthetic import write_esci_files

    data_dir = os.path.join(root, "data")
    examples, products = write_esci_files(num_queries, 0, data_dir, prefix="demo_")
    table = os.path.join(root, "demo_table.parquet")
    translated = os.path.join(root, "translated")
    _run(["trainers.demo_translation", f"--examples={examples}", f"--products={products}",
          f"--output={table}"], "demo translation table")
    _run(["trainers.translate", f"--examples={examples}", f"--products={products}", "--targets=es,jp,us",
          "--backend=table", f"--table={table}", f"--output_dir={translated}"], "trainers.translate")
    return {"examples": examples, "products": products,
            "augment_examples": os.path.join(translated, "examples.parquet"),
            "augment_products": os.path.join(translated, "products.parquet")}


def fit(root: str, paths: dict, seed: int, arm: str, extra, steps: int = 0) -> dict:
    name = f"{arm}_seed{seed}"
    augment = arm == "augmented"
    args = ["trainers.fit", f"--flagfile={DEMO_FLAGS}", "--synthetic_queries=0", f"--examples={paths['examples']}",
            f"--products={paths['products']}", f"--seed={seed}", f"--output_dir={os.path.join(root, name)}",
            "--noprogress_bar", *extra, *([f"--steps={steps}"] if steps else [])]
    if augment:
        args += [f"--augment_examples={paths['augment_examples']}", f"--augment_products={paths['augment_products']}"]
    _run(args, f"fit {name}")
    with open(os.path.join(root, name, "metrics.json")) as stream:
        metrics = json.load(stream)
    final = metrics["final"]
    return {"seed": seed, "arm": arm, "ndcg": final["ndcg"], "random_ndcg": final["random_ndcg"],
            "per_locale": {k: v["ndcg"] for k, v in final.get("per_locale", {}).items()},
            "num_train": metrics["data"]["num_train"], "num_eval": metrics["data"]["num_eval"],
            "eval_queries": final["num_queries"], "steps": metrics["total_steps"],
            "train_seconds": metrics["timing"].get("train_seconds"),
            "augmentation": metrics["data"].get("augmentation")}


ARMS = ("plain", "augmented", "plain_same_steps")


def table(rows) -> str:
    lines = ["| seed | arm | train pairs | steps | NDCG | us | es | jp |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        loc = r["per_locale"]
        lines.append(f"| {r['seed']} | {r['arm']} | {r['num_train']} | {r['steps']} | {r['ndcg']:.4f} | "
                     f"{loc.get('us', float('nan')):.4f} | {loc.get('es', float('nan')):.4f} | "
                     f"{loc.get('jp', float('nan')):.4f} |")
    for arm in ARMS:
        values = [r["ndcg"] for r in rows if r["arm"] == arm]
        lines.append(f"| mean | {arm} | | | {np.mean(values):.4f} | | | |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    root = os.path.abspath(FLAGS.output_dir)
    paths = prepare(root, FLAGS.num_queries)
    rows = []
    for seed in (int(s) for s in FLAGS.seeds):
        plain = fit(root, paths, seed, "plain", FLAGS.extra_fit_flags)
        augmented = fit(root, paths, seed, "augmented", FLAGS.extra_fit_flags)
        same_steps = fit(root, paths, seed, "plain_same_steps", FLAGS.extra_fit_flags, steps=augmented["steps"])
        rows += [plain, augmented, same_steps]
    with open(os.path.join(root, "results.json"), "w") as stream:
        json.dump(rows, stream, indent=2)
    print(table(rows))
    by = {(r["seed"], r["arm"]): r["ndcg"] for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    for other in ("plain", "plain_same_steps"):
        deltas = [by[(s, "augmented")] - by[(s, other)] for s in seeds]
        print(f"augmented - {other} NDCG per seed: {', '.join(f'{d:+.4f}' for d in deltas)}")
    print(f"results: {os.path.join(root, 'results.json')}")


if __name__ == "__main__":
    define_flags()
    cli.run(main, "bench.translation_augmentation")
