"""Train a cross-encoder ranker: `python -m trainers.fit --flagfile=trainers/flags/demo.flags`.

The flags (trainers/flags/fit_flags.py) become an esci_tf.training.config.RunConfig, and
esci_tf.training.train_lib.run_experiment trains it: data from ESCI parquet/csv (tokenized into
TFRecords under <output_dir>/data), prebuilt TFRecords or generated data; evaluation of NDCG
(and random-order NDCG) on the query-grouped eval lists; everything written to --output_dir
(see train_lib). A killed run started again with the same flags resumes from its last
checkpoint. `--help` lists the fit flags (`--helpfull` every flag, TensorFlow's included); a
bad flag, setting or input ends with one line naming it (esci_tf.cli; --verbose: the traceback).
"""


from absl import app, flags

from esci_tf import cli, cloud_paths
from trainers.flags import DIRECTORY as FLAGFILES, fit_flags

fit_flags.define_flags()
flags.adopt_module_key_flags(fit_flags)  # --help lists the fit flags
FLAGS = flags.FLAGS

def train(flag_values=FLAGS, callbacks=()) -> dict:
    """Run (or resume) the training the parsed flags describe; returns its metrics."""
    from esci_tf.training.config import ConfigError

    try:
        config = fit_flags.run_config(flag_values)
        # gs:// access first: validation globs --train_tfrecords, the first read of a path.
        cloud_paths.check_inputs(config.input_paths())
        cloud_paths.check_output(config.output_dir, "output_dir")
        config.validate()
    except ConfigError as error:
        raise flags.IllegalFlagValueError(str(error)) from error
    cli.check_writable(config.output_dir, "output_dir", directory=True)
    from esci_tf.training.progress import summary_table  # TensorFlow: only once the settings are checked
    from esci_tf.training.train_lib import run_experiment, summary_rows

    try:  # flags.txt is written once the run starts training, not by a refused invocation
        metrics = run_experiment(config, callbacks=callbacks, flags_text=fit_flags.flags_as_flagfile(flag_values))
    except ConfigError as error:
        raise flags.IllegalFlagValueError(str(error)) from error
    print(summary_table(summary_rows(metrics), title=f"esci-tf fit: {config.output_dir}"))
    return metrics


def run_with_args(argv, callbacks=()) -> dict:
    """Parse `argv` (argv[0] is the program name) as fit flags and train; for library use."""
    fit_flags.parse(argv, FLAGS)
    return train(FLAGS, callbacks)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    train(FLAGS)


if __name__ == "__main__":
    cli.run(main, "trainers.fit", flagfile_dir=FLAGFILES, alternatives=fit_flags.ALTERNATIVES)
