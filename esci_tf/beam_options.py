"""The command line of an entry point that can run on Apache Beam (--runner): which arguments are
Beam's pipeline options, and the checks a Dataflow run needs before anything is submitted.

Without Beam imported (the entry points without --runner stay light). An argument whose flag the
entry point does not define (`--name=value`, `--name value`, `--flag`) is Beam's and goes to
PipelineOptions as it is; --runner is the entry point's flag (pipeline_args puts it first). Dataflow's
own options (Beam's GoogleCloudOptions and WorkerOptions): --project, --region, --temp_location
(gs://), --sdk_container_image (the Dockerfile's image: workers need TensorFlow and this project),
--machine_type, --max_num_workers.

>>> from absl import flags
>>> values = flags.FlagValues()
>>> _ = [flags.DEFINE_string(name, None, "", flag_values=values) for name in ("examples", "runner")]
>>> split_pipeline_args(["prog", "--examples=e", "--runner=DirectRunner", "--direct_num_workers", "2"], values)
(['prog', '--examples=e', '--runner=DirectRunner'], ['--direct_num_workers', '2'])
>>> split_pipeline_args(["prog", "--examplez=e"], values)
(['prog', '--examplez=e'], [])
"""

from absl import flags

from esci_tf.errors import FlagError

RUNNER = "runner"
DATAFLOW = "DataflowRunner"
DATAFLOW_REQUIRED = ("project", "region", "temp_location", "sdk_container_image")
# The entry points' own arguments that absl or esci_tf.cli define only while parsing.
ALWAYS_OURS = ("verbose", "noverbose", "help", "helpshort", "helpfull", "h", "flagfile")


def _name(arg: str) -> str:
    return arg.lstrip("-").split("=", 1)[0]


def split_pipeline_args(argv: list, flag_values) -> tuple:
    """(argv for absl: the program and the entry point's own flags, Beam's pipeline arguments);
    without --runner all of argv is absl's (a mistyped flag stays an error)."""
    if not any(_name(arg) == RUNNER for arg in argv[1:] if arg.startswith("-")):
        return list(argv), []
    ours, beam = [argv[0]], []
    args = list(argv[1:])
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        name = _name(arg)
        known = any(name in values or (name.startswith("no") and name[2:] in values)
                    for values in (flag_values, flags.FLAGS)) or name in ALWAYS_OURS
        if not arg.startswith("-") or arg == "--" or known:
            ours.append(arg)
            continue
        beam.append(arg)
        if "=" not in arg and index < len(args) and not args[index].startswith("-"):
            beam.append(args[index])
            index += 1
    return ours, beam


def pipeline_args(runner: str, args) -> list:
    """Beam's arguments of a run on `runner`."""
    return [f"--{RUNNER}={runner}", *args]


def option_values(pipeline_args: list) -> dict:
    """{name: value} of `--name=value` / `--name value` pipeline arguments (True for a bare --flag)."""
    values, index = {}, 0
    while index < len(pipeline_args):
        arg = pipeline_args[index]
        index += 1
        name, equals, value = arg.lstrip("-").partition("=")
        if not equals:
            if index < len(pipeline_args) and not pipeline_args[index].startswith("-"):
                value = pipeline_args[index]
                index += 1
            else:
                value = True
        values[name] = value
    return values


def check_runner_options(runner: str, pipeline_args: list, paths: dict, dry_run: bool = False) -> None:
    """FlagError naming what a run on `runner` lacks: for Dataflow, DATAFLOW_REQUIRED and gs://
    files (its workers cannot read this machine's); then (not with dry_run, which sends nothing) the
    gs:// checks of esci_tf.cloud_paths on the files and --temp_location: credentials, bucket, access.
    `paths`: {flag: path or None}, the outputs under "output_dir"/"output"."""
    if runner != DATAFLOW:
        return
    values = option_values(pipeline_args)
    missing = [name for name in DATAFLOW_REQUIRED if not values.get(name)]
    if missing:
        raise FlagError(f"--runner={DATAFLOW} needs {', '.join('--' + name for name in missing)} "
                        "(BUILD.md, Building and scoring on Dataflow)")
    local = [f"--{flag}={path}" for flag, path in {**paths, "temp_location": values["temp_location"]}.items()
             if path is not None and not str(path).startswith("gs://")]
    if local:
        raise FlagError(f"--runner={DATAFLOW}: {', '.join(local)} must be gs:// (Dataflow's workers cannot read "
                        "this machine's files)")
    if dry_run:
        return
    from esci_tf import cloud_paths

    outputs = {flag: path for flag, path in paths.items() if flag.startswith("output")}
    cloud_paths.check_inputs({flag: path for flag, path in paths.items() if flag not in outputs})
    for flag, path in {**outputs, "temp_location": values["temp_location"]}.items():
        cloud_paths.check_output(path, flag)
