"""The multi-stage recipe: `python -m trainers.recipe --flagfile=F --output_dir R`.

Stages (esci_tf.recipe.pipeline): folds -> distill -> pseudo -> ensemble, each into R/<stage>/ and
skipped when done with the same settings; a changed setting reruns its stage and the ones after
it (the log names the setting). Kill it anywhere and rerun: it continues. R/final is a ranker
directory for trainers.predict and trainers.export; R/report.json and R/report.png say what each
stage and member scores out of fold. Every trainers.fit flag sets the fine-tunes.
"""

import sys

from absl import app, flags

from trainers.flags import recipe_flags

recipe_flags.define_flags()
flags.adopt_module_key_flags(recipe_flags)  # --help lists the recipe's flags and the fine-tunes'
flags.adopt_module_key_flags(recipe_flags.fit_flags)
FLAGS = flags.FLAGS


def run(flag_values=FLAGS) -> dict:
    """Run (or continue) the recipe the parsed flags describe; returns its report."""
    from esci_tf.recipe.pipeline import run_recipe
    from esci_tf.training.config import ConfigError

    try:
        config = recipe_flags.recipe_config(flag_values).validate()
        return run_recipe(config)
    except ConfigError as error:
        raise flags.IllegalFlagValueError(str(error)) from error


def run_with_args(argv) -> dict:
    """Parse `argv` (argv[0] is the program name) as recipe flags and run; for library use."""
    FLAGS.unparse_flags()
    FLAGS(list(argv))
    return run(FLAGS)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from esci_tf.data.errors import DataError

    try:
        report = run(FLAGS)
    except (flags.Error, DataError, FileNotFoundError) as error:  # bad flag or input: one line naming it
        sys.exit(f"trainers.recipe: {error}")
    chosen = report["ensemble"]["chosen"]
    print(f"recipe finished: final ranker ({chosen}) in {FLAGS.output_dir}/final; report {FLAGS.output_dir}/report.json")


if __name__ == "__main__":
    app.run(main)
