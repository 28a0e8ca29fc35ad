"""`make demo`: train the CPU demo (trainers/flags/demo.flags) and print its NDCG.

Generated ESCI-like data (us/es/jp, esci_tf.data.synthetic), a tiny random-init model on the
embedded demo vocabulary, about a minute on 2 CPU cores. Any trainers.fit flag overrides the
flagfile, e.g. `python -m trainers.demo --output_dir=/tmp/demo --epochs=1`; everything
trainers.fit writes (metrics.json included) goes to the demo's --output_dir.
"""

import os
import sys

from absl import app

from trainers import fit

DEMO_FLAGS = os.path.join(os.path.dirname(__file__), "flags", "demo.flags")


def run_demo(extra_args=()) -> dict:
    """Train the demo; returns fit's metrics."""
    return report(fit.run_with_args(["demo", f"--flagfile={DEMO_FLAGS}", *extra_args]))


def report(metrics: dict) -> dict:
    final = metrics["final"]
    print(f"demo NDCG {final['ndcg']:.4f} vs random-order NDCG {final['random_ndcg']:.4f} on "
          f"{final['num_queries']} eval queries; metrics: {os.path.join(fit.FLAGS.output_dir, fit.METRICS_FILE)}")
    return metrics


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        report(fit.train(fit.FLAGS))
    except fit.flags.Error as error:
        sys.exit(f"trainers.demo: {error}")


if __name__ == "__main__":
    app.run(main, argv=[sys.argv[0], f"--flagfile={DEMO_FLAGS}", *sys.argv[1:]])
