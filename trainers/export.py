"""Export a trained ranker as a SavedModel for TF Serving.

    python -m trainers.export --model_dir runs/demo_fit --export_dir runs/demo_fit/export

--model_dir is a ranker directory. A trainers.fit --output_dir (best_model.keras +
preprocessing.json) exports as raw product fields -> score, probabilities, logits
(esci_tf.serving.export); a trainers.recipe R/final (an ensemble or bag) exports with every
member in the graph (esci_tf.serving.ensemble_export). --export_dir is the model's base
directory, the one TF Serving's --model_base_path names: the SavedModel goes to
<export_dir>/<version>/ (--version, by default the next free integer; an existing version is
never overwritten), with warm-up requests in assets.extra/. A missing or wrong --model_dir or
an unwritable --export_dir ends with one line naming it (esci_tf.cli; --verbose: the traceback).

--tflite (a trainers.fit model only) also writes the model's TFLite models into
<export_dir>/<version>/tflite/ (esci_tf.serving.tflite: float32 and dynamic-range int8, one
fixed shape per length bucket of the run, --tflite_batch_size rows), which
`trainers.predict --model_dir <export_dir>/<version> --runtime=tflite` (or tflite_int8) scores
with. Off by default: each bucket and variant converts in 20-30 s for MiniLM (2 loaded cores).
"""

from absl import app, flags

from esci_tf import cli, cloud_paths

FLAGS = flags.FLAGS


def export(model_dir: str, export_dir: str, version: int | None = None, tflite: bool = False,
           tflite_batch_size: int = 32) -> str:
    """Load the ranker in model_dir and write its SavedModel to <export_dir>/<version>/ (with
    `tflite`: its TFLite models in tflite/ too); returns that directory. export_dir, the version
    and the ranker's kind (for --tflite) are checked before the model loads."""
    cloud_paths.check_inputs({"model_dir": model_dir})  # before the slow imports: fails in seconds
    cloud_paths.check_output(export_dir, "export_dir")
    from esci_tf.rankers import CrossEncoderRanker, load_ranker, ranker_kind
    from esci_tf.serving import versions

    from esci_tf.errors import FlagError

    last = str(export_dir).rstrip("/").rsplit("/", 1)[-1]
    if last.isdigit():
        raise FlagError(f"--export_dir={export_dir} ends in a version number; pass the base directory "
                        f"(the version folder is made under it; --version={last} picks the number)")
    if tflite and ranker_kind(model_dir) != "cross_encoder":
        raise FlagError(f"--tflite converts a trainers.fit model; --model_dir={model_dir} holds a "
                        f"{ranker_kind(model_dir)} ranker")
    cli.check_writable(export_dir, "export_dir", directory=True)
    versions.version_dir(export_dir, version)  # an existing version fails before the model loads
    ranker = load_ranker(model_dir)
    if isinstance(ranker, CrossEncoderRanker):
        from esci_tf.serving.export import export_saved_model

        extra = None
        if tflite:
            from esci_tf.serving.tflite import run_buckets, write_tflite

            buckets = run_buckets(model_dir, ranker.encoder.max_length)

            def extra(directory):
                write_tflite(ranker.model, ranker.encoder, directory, buckets, tflite_batch_size, locales=ranker.locales)

        return export_saved_model(ranker.model, ranker.encoder.fields_preprocessor, export_dir, version, extra,
                                  locales=ranker.locales)
    from esci_tf.serving.ensemble_export import export_ensemble

    return export_ensemble(ranker, export_dir, version)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    path = export(FLAGS.model_dir, FLAGS.export_dir, FLAGS.version, FLAGS.tflite, FLAGS.tflite_batch_size)
    print(f"SavedModel written to {path}" + (" (TFLite models in its tflite/)" if FLAGS.tflite else ""))


def define_tflite_flags() -> None:
    """The TFLite export flags (issue 26), in one block."""
    flags.DEFINE_bool("tflite", False, "Also write TFLite models (float32 and dynamic-range int8, one per length "
                      "bucket of the run) into <export_dir>/<version>/tflite/, for trainers.predict "
                      "--runtime=tflite; a trainers.fit model only.")
    flags.DEFINE_integer("tflite_batch_size", 32, "The fixed batch of the TFLite models (a smaller last batch "
                         "is padded).", lower_bound=1)


if __name__ == "__main__":
    flags.DEFINE_string("model_dir", None, "Ranker directory to export (a trainers.fit --output_dir or a "
                        "trainers.recipe R/final).")
    flags.DEFINE_string("export_dir", None, "The model's base directory (local or gs://); the SavedModel is "
                        "written to <export_dir>/<version>/.")
    flags.DEFINE_integer("version", None, "TF Serving version number (default: one more than the highest "
                         "under --export_dir, or 1).", lower_bound=0)
    define_tflite_flags()
    flags.mark_flags_as_required(["model_dir", "export_dir"])
    cli.run(main, "trainers.export")
