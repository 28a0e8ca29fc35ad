"""A recipe stage rerun because its settings changed names every changed setting with its old and new
value: the fine-tunes' settings by their trainers.fit flag names, fingerprints by what they stand for."""

import logging

import pandas as pd
from absl import flags

from esci_tf.preprocessing.template import TemplateSettings
from esci_tf.recipe.pipeline import folds_settings
from esci_tf.recipe.stages import Stage
from recipe_fixtures import recipe_args
from trainers.flags import recipe_flags

FILES = ("e.parquet", "p.parquet", "u.parquet", "up.parquet")  # only named, never read
FRAME = pd.DataFrame({"example_id": [1, 2], "query": ["a", "b"]})


def _settings(*extra, frame=FRAME):
    values = flags.FlagValues()
    recipe_flags.define_flags(values)
    values(["recipe", *recipe_args(FILES, "/tmp/recipe", *extra)])
    return folds_settings(recipe_flags.recipe_config(values), frame, TemplateSettings())


def test_a_changed_fine_tune_flag_is_named_with_both_values(tmp_path, caplog):
    Stage(str(tmp_path), "folds", _settings()).finish({})
    stage = Stage(str(tmp_path), "folds", _settings("--learning_rate=5e-4", "--fold_seed=3"))
    assert stage.changed_settings() == ["fold_seed", "learning_rate"]
    assert stage.describe_changes() == "fold_seed 0 -> 3; learning_rate 0.001 -> 0.0005"
    with caplog.at_level(logging.WARNING):
        assert stage.prepare()
    assert "recipe stage folds: settings changed (fold_seed 0 -> 3; learning_rate 0.001 -> 0.0005)" in caplog.text


def test_changed_contents_and_new_settings_say_what_changed(tmp_path):
    Stage(str(tmp_path), "folds", _settings()).finish({})
    other_data = _settings("--checkpoint=x", "--backbone_config=", frame=FRAME.assign(query=["a", "c"]))
    stage = Stage(str(tmp_path), "folds", other_data)
    described = stage.describe_changes()
    assert described.startswith('data (other labeled pairs); backbone_config {"num_layers": 2, ')
    assert described.endswith('-> unset; checkpoint unset -> "x"')
    Stage(str(tmp_path), "ensemble", {"upstream": {"folds": "a"}}).finish({})
    assert Stage(str(tmp_path), "ensemble", {"upstream": {"folds": "b"}}).describe_changes() == \
        "upstream.folds (an earlier stage reran)"
