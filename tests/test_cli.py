"""esci_tf.cli: every entry point takes --help (listing its own flags) and ends a user error with one
line and a non-zero exit, the traceback only with --verbose; outputs are checked before the work."""

import os
import subprocess
import sys

import pytest
from absl import flags

from cli_fixtures import REPO, assert_one_line_error, run_checked_without_tensorflow, run_module
from esci_tf import cli
from esci_tf.errors import DataError, FlagError


@pytest.mark.parametrize("module, own_flag", [
    ("trainers.fit", "--backbone_config"),
    ("trainers.demo", "--synthetic_queries"),
    ("trainers.predict", "--model_dir"),
    ("trainers.export", "--export_dir"),
    ("trainers.recipe", "--num_folds"),
    ("trainers.ensemble", "--runs"),
    ("tfrecords.build", "--num_shards"),
    ("trainers.translate", "--api_endpoint"),
])
def test_every_entry_point_takes_help_and_lists_its_own_flags(module, own_flag):
    result = run_module(module, "--help")
    assert result.returncode == 0, result.stderr[-3000:]
    assert own_flag in result.stdout and "--[no]verbose" in result.stdout
    assert "--tf_" not in result.stdout, "library flags are left to --helpfull"


def test_flags_help_and_setting_checks_need_no_tensorflow():
    """Every entry point parses its flags, prints --help and checks settings that need no data
    before TensorFlow is imported (a fraction of a second instead of ~8 s)."""
    modules = ("trainers.fit", "trainers.demo", "trainers.predict", "trainers.export", "trainers.recipe",
               "trainers.ensemble", "tfrecords.build", "trainers.translate")
    code = "\n".join(["import sys", *(f"import {m}" for m in modules),
                      "from esci_tf.training.config import ConfigError, RunConfig",
                      "try:",
                      "    RunConfig.from_flat({'synthetic_queries': 4, 'backbone_config': {}, 'checkpoint': 'x',",
                      "                         'output_dir': 'o'}).validate()",
                      "except ConfigError as error:",
                      "    print(error)",
                      "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))"])
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    refused, imported = done.stdout.splitlines()[-2:]
    assert "--checkpoint=x and --backbone_config" in refused and imported == "[]", done.stdout


SETTINGS = ("--synthetic_queries=12", "--output_dir=/tmp/never_written", "--strategy=cpu")
TINY = '{"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}'


@pytest.mark.parametrize("module, args, message", [
    ("trainers.fit", (f"--backbone_config={TINY}", "--strategy=tpu"), "--strategy=tpu: no TPU on this machine"),
    ("trainers.fit", ('--backbone_config={"num_layerz": 2}',), "unknown key(s) num_layerz"),
    ("trainers.fit", ('--backbone_config={"num_layers": 0}',), "num_layers=0 must be a positive integer"),
    ("trainers.fit", ('--backbone_config={"hidden_dim": 30, "num_heads": 4}',), "not divisible by num_heads=4"),
    ("trainers.fit", (f"--backbone_config={TINY}", "--checkpoint=x"), "--checkpoint=x and --backbone_config"),
    ("trainers.recipe", ('--backbone_config={"num_layerz": 2}',), "unknown key(s) num_layerz"),
    ("trainers.fit", (f"--backbone_config={TINY}", "--keep_layers=3"),
     "--keep_layers=3: the backbone (--backbone_config) has 2 transformer layers"),
    ("trainers.recipe", (f"--backbone_config={TINY}", "--student_layers=2"),
     "--student_layers=2: the student must have fewer layers than its teacher's 2"),
    ("trainers.demo", ("--strategy=tpu",), "--strategy=tpu: no TPU on this machine"),
])
def test_setting_checks_answer_in_under_a_second_without_tensorflow(module, args, message):
    """README: settings are checked before TensorFlow is imported. Measured: 0.5-0.8 s of CPU
    (0.55 s wall on a quiet 2-core machine); with TensorFlow imported first, 4-5 s. The bound is
    on CPU time, which a loaded machine does not inflate the way it does the wall time."""
    from esci_tf.training.tpu_machine import has_local_tpu

    if has_local_tpu():
        pytest.skip("this machine has a TPU")
    result, seconds, tensorflow_imported = run_checked_without_tensorflow(module, *SETTINGS, *args)
    assert_one_line_error(result, module, message, code=cli.FLAG_EXIT)
    assert not tensorflow_imported and seconds < 2, (seconds, tensorflow_imported)


def test_a_bad_flag_is_one_line_and_verbose_shows_the_traceback(tmp_path):
    result = run_module("trainers.export", "--model_dir", tmp_path / "nothing", "--export_dir", tmp_path / "out")
    assert_one_line_error(result, "trainers.export", str(tmp_path / "nothing"), code=cli.DATA_EXIT)
    verbose = run_module("trainers.export", "--model_dir", tmp_path / "nothing", "--export_dir",
                         tmp_path / "out", "--verbose")
    assert verbose.returncode != 0 and verbose.traceback
    unknown = run_module("trainers.export", "--model_dri=x", "--export_dir=y")
    assert_one_line_error(unknown, "trainers.export", "model_dri", code=cli.FLAG_EXIT)
    missing = run_module("tfrecords.build", "--examples=e.parquet")
    assert_one_line_error(missing, "tfrecords.build", "--products", code=cli.FLAG_EXIT)


def test_demo_refuses_stray_arguments_in_one_line():
    result = run_module("trainers.demo", "extra")
    assert_one_line_error(result, "trainers.demo", "unexpected arguments: extra", code=cli.FLAG_EXIT)


def test_predict_checks_its_output_before_loading_and_scoring(tmp_path):
    """A missing model dir is not even looked at: the unwritable --output is reported first."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_module("trainers.predict", f"--model_dir={tmp_path / 'no_model'}", "--examples=e.parquet",
                        "--products=p.parquet", f"--output={blocker / 'preds.csv'}")
    assert_one_line_error(result, "trainers.predict", "--output=", "is a file, not a directory",
                          code=cli.DATA_EXIT)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be created")
@pytest.mark.parametrize("module, args, flag", [
    ("trainers.predict", ("--model_dir=no_model", "--examples=e.parquet", "--products=p.parquet"), "--output"),
    ("trainers.fit", ("--synthetic_queries=12", "--backbone=xlm_roberta", "--max_length=24",
                      '--backbone_config={"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}'),
     "--output_dir"),
])
def test_an_output_where_no_file_can_be_created_is_one_line_naming_the_flag(module, args, flag):
    """/proc passes permission checks (for root everything does) but refuses new files: the
    up-front check creates one, so the user's flag and path are named before any work (the
    missing model and inputs are not even looked at)."""
    result = run_module(module, *args, f"{flag}=/proc/esci_out/preds.csv")
    assert_one_line_error(result, module, f"{flag}=/proc/esci_out/preds.csv", "/proc is not writable",
                          code=cli.DATA_EXIT)


def test_user_errors_and_bugs_are_told_apart():
    from esci_tf.training.config import ConfigError

    assert cli.exit_code(ConfigError("--x")) == cli.exit_code(FlagError("--x")) == cli.FLAG_EXIT
    assert cli.exit_code(flags.IllegalFlagValueError("--x")) == cli.FLAG_EXIT
    assert cli.exit_code(DataError("bad", path="f")) == cli.exit_code(FileNotFoundError("f")) == cli.DATA_EXIT
    assert cli.exit_code(PermissionError("f")) == cli.DATA_EXIT
    assert cli.exit_code(KeyError("x")) is None and cli.exit_code(TypeError("x")) is None
    assert cli.one_line(ValueError("first\n  second\n")) == "first; second"


def test_check_writable(tmp_path):
    cli.check_writable(tmp_path / "new" / "deeper" / "out.csv", "output")
    cli.check_writable(tmp_path / "new_dir", "output_dir", directory=True)
    cli.check_writable("gs://bucket/out", "output_dir", directory=True)
    a_file = tmp_path / "file.txt"
    a_file.write_text("")
    with pytest.raises(NotADirectoryError, match="--output_dir=.*not a directory"):
        cli.check_writable(a_file, "output_dir", directory=True)
    with pytest.raises(NotADirectoryError, match="--output="):
        cli.check_writable(a_file / "x.csv", "output")
    with pytest.raises(IsADirectoryError, match="--output="):
        cli.check_writable(tmp_path, "output")
    if os.path.isdir("/proc/self"):  # exists, passes os.access for root, refuses new files
        with pytest.raises(PermissionError, match="--output=/proc/out.csv: cannot create it, /proc is not writable"):
            cli.check_writable("/proc/out.csv", "output")
        with pytest.raises(PermissionError, match="--output_dir=/proc/run: cannot create it"):
            cli.check_writable("/proc/run", "output_dir", directory=True)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".esci_tf_probe")]
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(PermissionError, match="not writable"):
            cli.check_writable(locked / "out.csv", "output")


def test_help_names_a_long_hyphenated_flagfile_directory_whole(tmp_path):
    """--help's paragraph on shipped flagfiles is wrapped without breaking the directory's path
    (at hyphens or for length), so it can be copied from the terminal."""
    from absl import flags as absl_flags

    directory = tmp_path / ("pytest-of-root-popen-gw0-" * 4) / "lib" / "trainers" / "flags"
    directory.mkdir(parents=True)
    (directory / "demo.flags").write_text("--epochs=1\n")
    text = cli.help_text(absl_flags.FlagValues(), "A program.", False, str(directory))
    assert str(directory) in text and "demo.flags" in text


def test_the_light_entry_points_parse_without_pandas():
    """tfrecords.build, trainers.translate and trainers.export read no data before their flags
    are checked, so their --help imports neither TensorFlow nor pandas (~0.1 s of CPU, README)."""
    code = "\n".join(["import sys", "import tfrecords.build, trainers.translate, trainers.export",
                      "print(sorted(m for m in ('tensorflow', 'pandas') if m in sys.modules))"])
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "[]", done.stdout + done.stderr[-2000:]
