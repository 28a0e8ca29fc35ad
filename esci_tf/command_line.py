"""Two rules for an entry point's command line, applied where absl parses it (esci_tf.cli.run and
the entry points' run_with_args):

1. A bare `--flagfile=NAME` (no directory part) that is not a file here names one of the shipped
   flagfiles in `directory` (the trainers': trainers/flags/), so `--flagfile=tpu.flags` works from
   any directory and after `pip install`. A flagfile found nowhere is one line naming the flag and
   listing the shipped ones.
2. Alternatives: settings of which a run takes one (the data source: --examples/--products or
   --train_tfrecords/--eval_tfrecords or --synthetic_queries; the weights: --checkpoint or
   --backbone_config). When a flagfile sets one and the command line, after it, sets another,
   the command line's wins and the flagfile's is reset to its default (a warning names both), so
   `--flagfile=demo.flags --checkpoint=X` trains from X. Two alternatives both on the command
   line (or both in flagfiles) are left for the settings check to refuse. An empty value sets
   no alternative (trainers/flags/fit_flags.py reads `--backbone_config=` as unset, which also
   clears a flagfile's value).

>>> import tempfile
>>> from absl import flags
>>> values = flags.FlagValues()
>>> holders = [flags.DEFINE_string(n, None, "", flag_values=values) for n in ("checkpoint", "backbone_config")]
>>> ALTERNATIVES = ((("checkpoint",), ("backbone_config",)),)
>>> with tempfile.NamedTemporaryFile("w", suffix=".flags", delete=False) as flagfile:
...     _ = flagfile.write("--backbone_config={}")
>>> _ = parse(values, ["prog", f"--flagfile={flagfile.name}", "--checkpoint=x"], alternatives=ALTERNATIVES)
>>> values.checkpoint, values.backbone_config
('x', None)
>>> os.remove(flagfile.name)
>>> _ = parse(values, ["prog", "--backbone_config={}", "--checkpoint=x"], alternatives=ALTERNATIVES)
>>> values.checkpoint, values.backbone_config  # both on the command line: the settings check refuses them
('x', '{}')
"""

import os

from absl import flags, logging

FLAGFILE = "flagfile"


def shipped_flagfiles(directory: str) -> list:
    """The *.flags file names in `directory`, sorted."""
    return sorted(name for name in os.listdir(directory) if name.endswith(".flags"))


def _flagfile_value(args: list, index: int):
    """(value, index of the value) when args[index] is a --flagfile directive, else None."""
    arg = args[index]
    if arg in (f"--{FLAGFILE}", f"-{FLAGFILE}"):
        return (args[index + 1], index + 1) if index + 1 < len(args) else None
    for prefix in (f"--{FLAGFILE}=", f"-{FLAGFILE}="):
        if arg.startswith(prefix):
            return arg[len(prefix):], index
    return None


def resolve_flagfiles(args: list, directory: str | None) -> list:
    """args with each bare --flagfile name that is no file here replaced by directory/name (rule 1)."""
    args = list(args)
    for index in range(len(args)):
        if args[index] == "--":
            break
        found = _flagfile_value(args, index)
        if found is None:
            continue
        value, where = found
        path = os.path.expanduser(value)
        if "://" in path or os.path.exists(path):
            continue
        bare = os.path.basename(path) == path
        if directory is not None and bare and os.path.isfile(os.path.join(directory, path)):
            resolved = os.path.join(directory, path)
            args[where] = resolved if where != index else f"--{FLAGFILE}={resolved}"
            continue
        shipped = (f"; the shipped flagfiles, by bare name from any directory: "
                   f"{', '.join(shipped_flagfiles(directory))}") if directory is not None else ""
        raise flags.Error(f"--{FLAGFILE}={value}: no such file{shipped}")
    return args


def _flag_name(arg: str, flag_values):
    """The flag an argument sets (`--name=v`, `--name v`, `--noname`), or None."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    name = arg.lstrip("-").split("=", 1)[0]
    if name not in flag_values and name.startswith("no") and name[2:] in flag_values:
        name = name[2:]
    return name if name in flag_values else None


def _sources(args: list, flag_values) -> list:
    """(flag name, from a flagfile) of every flag the arguments set, in parse order, flagfiles expanded."""
    found = []
    index = 0
    while index < len(args) and args[index] != "--":
        directive = _flagfile_value(args, index)
        if directive is not None:
            lines = flag_values.read_flags_from_files([f"--{FLAGFILE}={directive[0]}"])
            found += [(name, True) for name in (_flag_name(line, flag_values) for line in lines) if name]
            index = directive[1] + 1
            continue
        name = _flag_name(args[index], flag_values)
        if name:
            found.append((name, False))
        index += 1
    return found


def _is_set(flag) -> bool:
    return flag.value not in (None, "", 0, False, [], ())


def apply_alternatives(flag_values, args: list, alternatives) -> list:
    """Rule 2 on parsed flag_values; returns the names of the flags reset."""
    sources = _sources(args[1:], flag_values)
    reset = []
    for groups in alternatives:
        last = {}  # group -> (position, from a flagfile) of its last setting
        for position, (name, from_file) in enumerate(sources):
            for group in groups:
                if name in group and any(_is_set(flag_values[n]) for n in group):
                    last[group] = (position, from_file)
        command_line = [g for g, (_, from_file) in last.items() if not from_file]
        if len(command_line) != 1:
            continue
        winner = command_line[0]
        for group, (position, from_file) in last.items():
            if group is not winner and from_file and position < last[winner][0]:
                for name in group:
                    flag_values[name].unparse()
                reset += group
                logging.warning("--%s on the command line replaces --%s of the flagfile", "/--".join(winner),
                                "/--".join(group))
    return reset


def parse(flag_values, argv: list, flagfile_dir: str | None = None, alternatives=()) -> list:
    """flag_values(argv) with rules 1 and 2; returns the arguments absl leaves (argv[0] first)."""
    argv = [argv[0], *resolve_flagfiles(argv[1:], flagfile_dir)]
    rest = flag_values(argv)
    apply_alternatives(flag_values, argv, alternatives)
    return rest
