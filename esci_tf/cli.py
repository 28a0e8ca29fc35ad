"""How every `python -m` entry point ends on a user error: one line, no traceback.

`run(main, program)` is absl's app.run with the project's error handling: a user error (a bad
flag or setting, bad data, a missing or unwritable file) prints `<program>: <message>` as the
last line on stderr and exits 2 (flags and settings) or 1 (data and files); --verbose (defined
here, once) shows the traceback as well. Any other exception is a bug and keeps its traceback.
A run stopped by SIGTERM (esci_tf.training.preemption.Preempted) prints `<program>: preempted at
step N; rerun the same command to resume` and exits 143; a training run stopped by SIGINT (Ctrl-C)
the same with `interrupted at step N`, exit 130. Ctrl-C anywhere else prints `<program>:
interrupted (Ctrl-C); rerun the same command to continue` and exits 130 (the programs' files are
written whole or resumed, so a rerun continues or starts the file again).
--help (-h, --helpshort) prints the module docstring and the entry point's own flags and exits
0; --helpfull adds every library's flags. An entry point with shipped flagfiles (`flagfile_dir`)
takes them by bare name and lets the command line replace a flagfile's alternative settings
(esci_tf.command_line); --help says which.
"""

import errno
import os
import signal
import sys
import tempfile
import textwrap

from absl import app, flags

from esci_tf import command_line
from esci_tf.errors import DataError, FlagError
from esci_tf.training.preemption import Preempted

VERBOSE = "verbose"
FLAG_EXIT = 2  # a bad flag or setting
DATA_EXIT = 1  # bad data, a missing or unwritable file
INTERRUPTED_EXIT = 128 + signal.SIGINT  # Ctrl-C
HELP_ARGS = ("--help", "-h", "-?", "--helpshort")
HELPFULL_ARGS = ("--helpfull",)
_FILE_ERRORS = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)


def define_verbose(flag_values=flags.FLAGS) -> None:
    """Defines --verbose in flag_values (once)."""
    if VERBOSE not in flag_values:
        flags.DEFINE_bool(VERBOSE, False, "On a user error, show the full traceback too (default: one line).",
                          flag_values=flag_values)


def exit_code(error: BaseException):
    """FLAG_EXIT or DATA_EXIT for a user error, None for anything else (a bug)."""
    if isinstance(error, (flags.Error, app.UsageError, FlagError)):
        return FLAG_EXIT
    if isinstance(error, (DataError, *_FILE_ERRORS)):
        return DATA_EXIT
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(error, (tf.errors.NotFoundError, tf.errors.PermissionDeniedError)):
        return DATA_EXIT
    return None


def one_line(error: BaseException) -> str:
    """The error's message on one line."""
    text = str(error) or getattr(error, "message", "") or type(error).__name__
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return "; ".join(lines)


def fail(program: str, error: BaseException, code: int):
    """Prints `<program>: <message>` to stderr and exits with `code`."""
    sys.stdout.flush()
    print(f"{program}: {one_line(error)}", file=sys.stderr)
    sys.exit(code)


def _wants_verbose(args) -> bool:
    return any(arg in ("--verbose", "--verbose=true", "--verbose=1") for arg in args)


def help_text(flag_values, doc: str | None, full: bool = False, flagfile_dir: str | None = None) -> str:
    """The module docstring, the shipped flagfiles (if any) and the entry point's flags (every
    flag with `full`)."""
    own = flag_values is not flags.FLAGS  # an entry point's own FlagValues: all of them are its flags
    if full:
        listed = flag_values.get_help() + ("\n" + flags.FLAGS.get_help() if own else "")
    else:
        listed = flag_values.get_help() if own else flag_values.main_module_help()
    shipped = ""
    if flagfile_dir is not None:
        shipped = "\n\n" + textwrap.fill(
            "--flagfile=F reads flags from the file F; flags after it override its values, and a data source "
            "or weights given after it replace the file's (--checkpoint replaces --backbone_config; an empty "
            "--backbone_config= clears it). A bare name that is no file here is a shipped flagfile, found from "
            f"any directory: {', '.join(command_line.shipped_flagfiles(flagfile_dir))} (in {flagfile_dir}).", 100,
            break_long_words=False, break_on_hyphens=False)  # a path stays whole, whatever its length
    return (f"{(doc or '').strip()}{shipped}\n\nflags:\n{listed}\n\n"
            "Try --helpfull to list every flag, the libraries' included.")


def check_writable(path: str, flag: str, directory: bool = False) -> None:
    """Raises (naming the flag and the path) when a local output file (or directory) cannot be written.

    A path that exists must be a file (a directory with `directory`); the directory that holds
    the output (the output directory itself, or the file's) or, when it does not exist yet, its
    nearest existing parent must be a directory in which a file can be created: a probe file is
    created and removed there (permission bits alone miss read-only file systems, /proc, and a
    root user's false "writable"), which is where the temporaries of an atomic write go. Remote
    paths are left alone here: entry points check gs:// ones with esci_tf.cloud_paths.check_output.
    """
    path = os.fspath(path)
    if "://" in path:
        return
    absolute = os.path.abspath(path)
    if os.path.exists(absolute):
        if directory and not os.path.isdir(absolute):
            raise NotADirectoryError(f"--{flag}={path}: exists and is not a directory")
        if not directory and os.path.isdir(absolute):
            raise IsADirectoryError(f"--{flag}={path}: is a directory; give a file name")
        if not directory and not os.access(absolute, os.W_OK):
            raise PermissionError(f"--{flag}={path}: not writable")
    parent = absolute if directory else os.path.dirname(absolute)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"--{flag}={path}: {parent} is a file, not a directory")
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".esci_tf_probe.", dir=parent)
    except OSError as error:
        where = "it is not writable" if parent == absolute else f"cannot create it, {parent} is not writable"
        reason = f" ({error.strerror})" if error.errno != errno.ENOENT else ""  # ENOENT: /proc's answer
        raise PermissionError(f"--{flag}={path}: {where}{reason}") from None
    os.close(descriptor)
    os.remove(probe)


def run(main, program: str, flag_values=flags.FLAGS, argv=None, flagfile_dir: str | None = None,
        alternatives=()) -> None:
    """app.run(main) with the project's --help, --verbose and one-line user errors (see the
    module docstring). `flag_values`: the entry point's own FlagValues when it is not
    flags.FLAGS (absl's flags then keep their defaults). `flagfile_dir` and `alternatives`:
    esci_tf.command_line.parse's."""
    define_verbose(flag_values)
    flag_values.register_key_flag_for_module(sys.argv[0], flag_values[VERBOSE])  # listed by --help
    doc = sys.modules["__main__"].__doc__

    def parse(args):
        options = args[1:args.index("--")] if "--" in args else args[1:]
        if any(arg in HELP_ARGS + HELPFULL_ARGS for arg in options):
            print(help_text(flag_values, doc, any(arg in HELPFULL_ARGS for arg in options), flagfile_dir))
            sys.exit(0)
        try:
            rest = command_line.parse(flag_values, args, flagfile_dir, alternatives)
            if flag_values is not flags.FLAGS:
                flags.FLAGS(args[:1])
        except flags.Error as error:
            if _wants_verbose(options):
                raise
            fail(program, error, FLAG_EXIT)
        return rest

    def checked_main(args):
        try:
            return main(args)
        except Preempted as stopped:  # a BaseException: no `except Exception` on the way swallowed it
            fail(program, stopped, stopped.exit_code)
        except KeyboardInterrupt:
            fail(program, KeyboardInterrupt("interrupted (Ctrl-C); rerun the same command to continue"),
                 INTERRUPTED_EXIT)
        except Exception as error:  # noqa: BLE001 (user errors become one line; bugs re-raise)
            code = exit_code(error)
            if code is None or flag_values[VERBOSE].value:
                raise
            fail(program, error, code)

    app.run(checked_main, argv=argv, flags_parser=parse)
