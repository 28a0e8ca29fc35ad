"""The multi-stage recipe: `python -m trainers.recipe --flagfile=F --output_dir R`.

Stages (esci_tf.recipe.pipeline): folds -> distill -> pseudo -> ensemble, each into R/<stage>/ and
skipped when done with the same settings; a changed setting reruns its stage and the ones after
it (the log names each changed setting, old -> new). Kill it anywhere and rerun: it continues.
R/final is a ranker directory for trainers.predict and trainers.export; R/report.json and
R/report.png say what each stage and member scores out of fold; with --student_layers, R/student is
the teacher distilled into a smaller cross-encoder, its NDCG and speed next to the teacher's. Every
trainers.fit flag sets the fine-tunes. A bad flag or input ends with one line naming it (esci_tf.cli;
--verbose: the traceback).
"""

import sys

from absl import app, flags

from esci_tf import cli, cloud_paths
from trainers.flags import DIRECTORY as FLAGFILES, fit_flags, recipe_flags

recipe_flags.define_flags()
flags.adopt_module_key_flags(recipe_flags)  # --help lists the recipe's flags and the fine-tunes'
flags.adopt_module_key_flags(fit_flags)
FLAGS = flags.FLAGS


def member_configs(config, argv) -> dict:
    """{name: RecipeConfig} of --member_runs: the command line `argv` with each member's flagfile
    after it (so its flags win), checked like the command's own."""
    configs = {}
    for name, flagfile in zip(config.member_run_names(), config.member_runs):
        values = flags.FlagValues()
        recipe_flags.define_flags(values)
        fit_flags.parse([*argv, f"--flagfile={flagfile}"], values)
        configs[name] = recipe_flags.recipe_config(values)
    return configs


def run(flag_values=FLAGS, argv=None) -> dict:
    """Run (or continue) the recipe the parsed flags describe (`argv`: the command line they
    came from, sys.argv by default; member runs start from it); returns its report."""
    from esci_tf.training.config import ConfigError

    try:
        config = recipe_flags.recipe_config(flag_values)
        cloud_paths.check_inputs(config.input_paths())
        cloud_paths.check_output(config.output_dir, "output_dir")
        config.validate()
        members = member_configs(config, sys.argv if argv is None else argv)
        for member in members.values():
            member.validate()
            cloud_paths.check_inputs(member.run.input_paths())
        cli.check_writable(config.output_dir, "output_dir", directory=True)
        if members:
            from esci_tf.recipe.member_runs import run_with_members  # TensorFlow: once the settings are checked

            return run_with_members(config, members)
        from esci_tf.recipe.pipeline import run_recipe

        return run_recipe(config)
    except ConfigError as error:
        raise flags.IllegalFlagValueError(str(error)) from error


def run_with_args(argv) -> dict:
    """Parse `argv` (argv[0] is the program name) as recipe flags and run; for library use."""
    fit_flags.parse(argv, FLAGS)
    return run(FLAGS, argv)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    report = run(FLAGS)
    chosen = report["ensemble"]["chosen"]
    where = report.get("runs_ensemble_report", f"{FLAGS.output_dir}/report.json")
    print(f"recipe finished: final ranker ({chosen}) in {FLAGS.output_dir}/final; report {where}")
    if "student" in report:
        from esci_tf.recipe.student import describe

        print(describe(report["student"]))


if __name__ == "__main__":
    cli.run(main, "trainers.recipe", flagfile_dir=FLAGFILES, alternatives=fit_flags.ALTERNATIVES)
