"""`make demo`: train the CPU demo (trainers/flags/demo.flags) and print its NDCG.

Generated ESCI-like data (us/es/jp, esci_tf.data.synthetic), a tiny random-init model on the
embedded demo vocabulary, about a minute on 2 CPU cores. Any trainers.fit flag overrides the
flagfile, e.g. `python -m trainers.demo --output_dir=/tmp/demo --epochs=1`; everything
trainers.fit writes (metrics.json included) goes to the demo's --output_dir. A rerun on a
finished --output_dir trains nothing: it says so and reports the earlier run (its timing kept).
"""

import os
import sys

from absl import app, flags

from esci_tf import cli
from trainers import fit
from trainers.flags import DIRECTORY as FLAGFILES, fit_flags

flags.adopt_module_key_flags(fit_flags)  # --help lists the fit flags the demo takes
DEMO_FLAGS = os.path.join(FLAGFILES, "demo.flags")


def run_demo(extra_args=()) -> dict:
    """Train the demo; returns fit's metrics."""
    return report(fit.run_with_args(["demo", f"--flagfile={DEMO_FLAGS}", *extra_args]))


def report(metrics: dict) -> dict:
    from esci_tf.training.train_lib import METRICS_FILE

    final = metrics["final"]
    metrics_path = os.path.join(fit.FLAGS.output_dir, METRICS_FILE)
    if metrics["timing"].get("reused_finished_run"):
        print(f"demo: {fit.FLAGS.output_dir} already holds the finished demo run; nothing was trained now. "
              "Its results (from the earlier run) follow; pass another --output_dir or delete this one "
              "to train again.")
    print(f"demo NDCG {final['ndcg']:.4f} vs random-order NDCG {final['random_ndcg']:.4f} on "
          f"{final['num_queries']} eval queries; metrics: {metrics_path}")
    return metrics


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    report(fit.train(fit.FLAGS))


if __name__ == "__main__":
    cli.run(main, "trainers.demo", argv=[sys.argv[0], f"--flagfile={DEMO_FLAGS}", *sys.argv[1:]],
            flagfile_dir=FLAGFILES, alternatives=fit_flags.ALTERNATIVES)
