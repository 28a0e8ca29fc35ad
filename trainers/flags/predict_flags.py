"""The flags of trainers.predict, in their own FlagValues so they never clash with fit's."""

from absl import flags

from esci_tf.data.locales import HELP as LOCALES_HELP

PREDICT_FLAGS = flags.FlagValues()


def define_flags(flag_values=PREDICT_FLAGS):
    """Define the predict flags once in `flag_values`."""
    if "model_dir" in flag_values:
        return flag_values
    flags.DEFINE_string("model_dir", None, "The --output_dir of a trainers.fit run (holds "
                        "best_model.keras and preprocessing.json).", flag_values=flag_values)
    flags.DEFINE_string("examples", None, "ESCI examples to score (parquet/csv; labels "
                        "optional).", flag_values=flag_values)
    flags.DEFINE_string("products", None, "Products file matching --examples.",
                        flag_values=flag_values)
    flags.DEFINE_string("output", None, "Predictions CSV to write.", flag_values=flag_values)
    flags.DEFINE_bool("submission", False, "Write a submission file instead of scores: the task-1 ranking "
                      "(query_id, product_id; best first within each query); with --task=2 the task-2 file "
                      "(example_id, esci_label: exact/substitute/complement/irrelevant, the KDD Cup 2022's "
                      "values; the dataset writes E/S/C/I); with --task=3 the task-3 file (example_id, "
                      "substitute_label: substitute/no_substitute). Tasks 2 and 3 decide from the class "
                      "probabilities by the model directory's decisions.json, else argmax.",
                      flag_values=flag_values)
    flags.DEFINE_enum("task", "1", ["1", "2", "3", "all"], "Which task's pairs to score (1: small_version, "
                      "2 and 3: large_version, all: either) and, with --submission, which file to write.",
                      flag_values=flag_values)
    flags.DEFINE_enum("split", None, ["train", "test"], "Score only this split's rows.",
                      flag_values=flag_values)
    flags.DEFINE_list("locales", [], LOCALES_HELP + " A model trained with --locales refuses rows of "
                      "other locales: give it its own.", flag_values=flag_values)
    flags.DEFINE_enum("on_bad_rows", "raise", ["raise", "skip"], "Bad rows stop the run, or "
                      "are dropped and reported.", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 128, "Pairs per model call.", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_integer("chunk_size", 8192, "Pairs read, scored and appended to --output per step: memory "
                         "is bounded by it, and a killed run continues after its last complete chunk.",
                         lower_bound=1, flag_values=flag_values)
    define_runtime_flags(flag_values)
    for name in ("model_dir", "examples", "products", "output"):
        flags.mark_flag_as_required(name, flag_values=flag_values)
    return flag_values


RUNTIMES = ("keras", "tflite", "tflite_int8")


def define_runtime_flags(flag_values) -> None:
    """The scoring runtime flag (issue 26), in one block."""
    flags.DEFINE_enum("runtime", "keras", list(RUNTIMES), "What scores the pairs: keras (the model in --model_dir), "
                      "or the TFLite models trainers.export --tflite wrote (LiteRT with XNNPACK, one thread per "
                      "core): tflite (float32) or tflite_int8 (dynamic-range int8, faster, scores within the "
                      "tolerance its tests state); then --model_dir is that export's version directory "
                      "(<export_dir>/<version>) and the batch is the export's (--tflite_batch_size), not "
                      "--batch_size.", flag_values=flag_values)
