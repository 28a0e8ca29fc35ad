"""Export a trained ranker as a SavedModel for TF Serving.

    python -m trainers.export --model_dir runs/demo_fit --export_dir runs/demo_fit/export/1

--model_dir is a ranker directory. A trainers.fit --output_dir (best_model.keras +
preprocessing.json) exports as (query, product_text) strings -> score, probabilities, logits
(esci_tf.serving.export); a trainers.recipe R/final (an ensemble or bag) exports with every
member in the graph (esci_tf.serving.ensemble_export). TF Serving wants a numeric version
folder: end --export_dir in one (…/export/1). A missing or wrong --model_dir or an unwritable
--export_dir ends with one line naming it (esci_tf.cli; --verbose: the traceback).
"""

from absl import app, flags

from esci_tf import cli

FLAGS = flags.FLAGS


def export(model_dir: str, export_dir: str) -> str:
    """Load the ranker in model_dir and write its SavedModel to export_dir; returns export_dir.
    export_dir is checked for writability first."""
    from esci_tf.rankers import CrossEncoderRanker, load_ranker

    cli.check_writable(export_dir, "export_dir", directory=True)
    ranker = load_ranker(model_dir)
    if isinstance(ranker, CrossEncoderRanker):
        from esci_tf.serving import ScoringModule, export_saved_model

        module = ScoringModule(ranker.model, ranker.encoder.preprocessor)
        return export_saved_model(module, export_dir, template=ranker.encoder.template.to_dict())
    from esci_tf.serving.ensemble_export import export_ensemble, template_of

    return export_ensemble(ranker, export_dir, template=template_of(ranker))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    path = export(FLAGS.model_dir, FLAGS.export_dir)
    print(f"SavedModel written to {path}")


if __name__ == "__main__":
    flags.DEFINE_string("model_dir", None, "Ranker directory to export (a trainers.fit --output_dir or a "
                        "trainers.recipe R/final).")
    flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (local or gs://).")
    flags.mark_flags_as_required(["model_dir", "export_dir"])
    cli.run(main, "trainers.export")
