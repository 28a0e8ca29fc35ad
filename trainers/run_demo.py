"""`make demo`: train the CPU demo (trainers/flags/demo.flags) and print its NDCG.

Extra command-line flags override the flagfile, e.g. `python -m trainers.run_demo
--output_dir=/tmp/demo --epochs=1`. Writes everything trainers.fit writes (metrics.json included)
to the demo's --output_dir.
"""

import os
import sys

from trainers import fit

DEMO_FLAGS = os.path.join(os.path.dirname(__file__), "flags", "demo.flags")


def run_demo(extra_args=()) -> dict:
    """Train the demo; returns fit's metrics dict."""
    metrics = fit.run_with_args(["run_demo", f"--flagfile={DEMO_FLAGS}", *extra_args])
    final = metrics["final"]
    print(f"demo NDCG {final['ndcg']:.4f} vs random-order NDCG {final['random_ndcg']:.4f} "
          f"on {final['num_queries']} eval queries; metrics: "
          f"{os.path.join(fit.FLAGS.output_dir, fit.METRICS_FILE)}")
    return metrics


if __name__ == "__main__":
    run_demo(sys.argv[1:])
