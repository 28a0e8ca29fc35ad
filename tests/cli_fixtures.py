"""Running an entry point as the user does (`python -m ...` in a subprocess) and checking how it
ends: the exit code, the last stderr line, and whether a traceback was shown."""

import dataclasses
import os
import pathlib
import subprocess
import resource
import signal
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def ctrl_c_as_in_a_terminal() -> None:
    """A subprocess `preexec_fn`: SIGINT at its default, as a command typed in a terminal has it.
    A suite started in the background (`make test &`, nohup, CI runners) ignores SIGINT, and a
    child inherits that, so a test that sends SIGINT to stand for Ctrl-C would see it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclasses.dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr


def run_module(module: str, *args, timeout: int = 300, env=None, environment=None) -> Result:
    """`python -m module args...` from the repository root, in os.environ (or `environment`)
    with `env` added."""
    environment = dict(os.environ if environment is None else environment, TF_CPP_MIN_LOG_LEVEL="3",
                       CUDA_VISIBLE_DEVICES="", **(env or {}))
    for name in ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "COLAB_TPU_ADDR"):
        environment.pop(name, None)
    done = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=environment)
    return Result(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: Result, program: str, *fragments, code=None) -> str:
    """The run failed (with `code` when given), its last stderr line is `<program>: ...` holding every
    fragment, and no traceback was printed; returns that line."""
    assert result.returncode != 0, result.stdout[-2000:]
    if code is not None:
        assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    line = result.last_line
    assert line.startswith(f"{program}: "), result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not result.traceback, result.stderr[-3000:]
    return line


def run_checked_without_tensorflow(module: str, *args, cwd=None, code_path=REPO) -> tuple:
    """`python -m module args...` (run as __main__ through runpy) in a fresh process, in `cwd`
    (default the repository root) with `code_path` first on PYTHONPATH: its Result, its CPU time in
    seconds (user + system: unlike the wall time, not inflated by a loaded machine), and whether
    TensorFlow was imported by the time it ended."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{module!r}, *sys.argv[1:]]\n"
            "try:\n"
            f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
            "finally:\n"
            "    print('tensorflow imported:', 'tensorflow' in sys.modules, flush=True)\n")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(code_path), os.environ.get("PYTHONPATH")])))
    for name in ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "COLAB_TPU_ADDR"):
        environment.pop(name, None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd or REPO, capture_output=True,
                          text=True, timeout=120, env=environment)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Result(done.returncode, done.stdout, done.stderr), seconds, "tensorflow imported: True" in done.stdout
