"""run_settings: which settings a resume may change (config.RESULT_NEUTRAL), inputs by content,
and the one-line refusal."""

import pytest

from esci_tf.training import run_settings
from esci_tf.training.config import RESULT_NEUTRAL, ConfigError, RunConfig
from esci_tf.training.run_data import data_identity


def _config(tmp_path, **changes):
    examples, products = tmp_path / "examples.csv", tmp_path / "products.csv"
    for path in (examples, products):
        if not path.exists():
            path.write_text("rows\n")
    return RunConfig.from_flat({"examples": str(examples), "products": str(products), "backbone_config": {},
                                "output_dir": str(tmp_path / "run"), **changes})


def _settings(config):
    return run_settings.result_settings(config, data_identity(config))


def test_every_neutral_setting_is_a_run_config_field():
    assert RESULT_NEUTRAL <= set(RunConfig.field_names())


def test_neutral_settings_and_moved_files_may_change_result_settings_may_not(tmp_path):
    config = _config(tmp_path)
    (tmp_path / "run").mkdir()
    run_settings.record(config.output_dir, _settings(config))
    moved = tmp_path / "moved.csv"
    moved.write_text((tmp_path / "examples.csv").read_text())
    harmless = config.replace(eval_every_steps=7, checkpoint_every_steps=3, progress_bar=False, examples=str(moved))
    run_settings.check_resume(config.output_dir, _settings(harmless))
    (tmp_path / "examples.csv").write_text("other rows\n")
    with pytest.raises(ConfigError) as refused:
        run_settings.check_resume(config.output_dir, _settings(config.replace(learning_rate=1e-4, precision="mixed_bfloat16")))
    message = str(refused.value)
    assert "\n" not in message
    assert "--learning_rate 3e-05 -> 0.0001, --precision float32 -> mixed_bfloat16" in message
    with pytest.raises(ConfigError, match=r"--examples 5 bytes sha256 \w+ -> 11 bytes sha256 \w+"):
        run_settings.check_resume(config.output_dir, _settings(config))
