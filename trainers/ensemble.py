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

from absl import app

from esci_tf import cli
from trainers.flags import ensemble_flags

FLAGS = ensemble_flags.define_flags()


def run(flag_values=FLAGS) -> dict:
    """Build the ensemble the parsed flags describe; returns its report. The settings are checked
    before TensorFlow is imported."""
    settings = ensemble_flags.ensemble_settings(flag_values).validate()
    cli.check_writable(settings.output_dir, "output_dir", directory=True)
    from esci_tf.ensembles.build import build_ensemble

    return build_ensemble(settings)


def summary(report: dict, output_dir: str) -> str:
    """The line the command prints: where E is, what it chose, the nested estimate."""
    ensemble = report["ensemble"]
    nested, delta = ensemble["nested"], ensemble["nested"]["ensemble_minus_best"]
    return (f"ensemble written to {output_dir} ({ensemble['chosen']}; weights {ensemble['weights']}); nested NDCG "
            f"{nested['ensemble_ndcg']:.4f} against the best member's {nested['best_member_ndcg']:.4f}: "
            f"{delta['mean']:+.4f} [{delta['low']:+.4f}, {delta['high']:+.4f}]")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    print(summary(run(FLAGS), FLAGS.output_dir))


if __name__ == "__main__":
    cli.run(main, "trainers.ensemble", flag_values=FLAGS)
