"""Export a trained run as a SavedModel for TF Serving.

    python -m trainers.export --model_dir runs/demo_fit --export_dir runs/demo_fit/export/1

--model_dir is a trainers.fit --output_dir (best_model.keras + preprocessing.json); the
SavedModel takes (query, product_text) strings and returns score, probabilities and logits
(see esci_tf.serving.export). TF Serving wants a numeric version folder: end --export_dir in
one (…/export/1).
"""

from absl import app, flags

FLAGS = flags.FLAGS


def export(model_dir: str, export_dir: str) -> str:
    """Load the run in model_dir and write its SavedModel to export_dir; returns export_dir."""
    from esci_tf.rankers import load_ranker
    from esci_tf.serving import ScoringModule, export_saved_model

    ranker = load_ranker(model_dir)
    module = ScoringModule(ranker.model, ranker.encoder.preprocessor)
    return export_saved_model(module, export_dir, template=ranker.encoder.template.to_dict())


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    path = export(FLAGS.model_dir, FLAGS.export_dir)
    print(f"SavedModel written to {path} (signatures: serving_default, score_tokens)")


if __name__ == "__main__":
    flags.DEFINE_string("model_dir", None, "trainers.fit --output_dir to export.")
    flags.DEFINE_string("export_dir", None, "Where to write the SavedModel (local or gs://).")
    flags.mark_flags_as_required(["model_dir", "export_dir"])
    app.run(main)
