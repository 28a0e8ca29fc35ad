"""An ensemble across recipe runs: `python -m trainers.ensemble --runs R1,R2 --output_dir E
--examples X --products Y [--members bm25,zero_shot]`.

Each run (a trainers.recipe --output_dir, folds aligned with --folds_from) gives its
cross-encoder and, if it trained one, its bi-encoder; their weights are fitted per locale on
their out-of-fold scores, chosen by nested cross-validation over queries
(esci_tf.ensembles.build, esci_tf.recipe.ensemble_fit). E is a ranker directory for
trainers.predict and trainers.export; E/report.json and E/report.png give each member's
out-of-fold NDCG, their correlations, the weights and the ensemble against its best member. A bad
flag or input ends with one line naming it (esci_tf.cli; --verbose: the traceback).
"""

from absl import app, flags

from esci_tf import cli
from trainers.flags import ensemble_flags

ensemble_flags.define_flags()
FLAGS = flags.FLAGS


def run(flag_values=FLAGS) -> dict:
    """Build the ensemble the parsed flags describe; returns its report."""
    from esci_tf.ensembles.build import build_ensemble

    settings = ensemble_flags.ensemble_settings(flag_values)
    cli.check_writable(settings.output_dir, "output_dir", directory=True)
    return build_ensemble(settings)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    report = run(FLAGS)
    nested = report["ensemble"]["nested"]
    delta = nested["ensemble_minus_best"]
    print(f"ensemble written to {FLAGS.output_dir} ({report['ensemble']['chosen']}; weights "
          f"{report['ensemble']['weights']}); nested NDCG {nested['ensemble_ndcg']:.4f} against the best member's "
          f"{nested['best_member_ndcg']:.4f}: {delta['mean']:+.4f} [{delta['low']:+.4f}, {delta['high']:+.4f}]")


if __name__ == "__main__":
    cli.run(main, "trainers.ensemble")
