"""Each setting declared once (esci_tf.settings): a new RunConfig field is one edit (its flag, the
resume comparison, the up-front path checks and the recipe's stage keys follow from its
declaration), and every flag of every entry point comes from a declared setting."""

import dataclasses
import os
import re

import pytest
from absl import flags

from esci_tf.command_settings import BuildSettings, PredictSettings
from esci_tf.ensembles.settings import EnsembleSettings
from esci_tf.errors import FlagError
from esci_tf.recipe.config import RecipeConfig
from esci_tf.settings import INPUT, LOCAL, NEUTRAL, RESULT, declared, setting
from esci_tf.training import config as config_lib, run_settings
from esci_tf.training.config import ConfigError, RunConfig
from trainers.flags import build_flags, ensemble_flags, fit_flags, predict_flags, recipe_flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = {"synthetic_queries": 10, "backbone_config": {"num_layers": 2}}  # generated data: no input files


def _add_setting(monkeypatch, name, default, role):
    """The one edit: a field declared on a section (here a subclass standing in for it)."""
    section = config_lib.SECTIONS["training"]
    extended = dataclasses.make_dataclass(
        "ExtendedTraining", [(name, type(default), setting(default, f"What {name} does.", role=role))],
        bases=(section,))
    monkeypatch.setitem(config_lib.SECTIONS, "training", extended)


def _record_old_run(tmp_path):
    """A run directory written before the new setting existed."""
    old = RunConfig.from_flat({**RUN, "output_dir": str(tmp_path)})
    run_settings.record(old.output_dir, run_settings.result_settings(old, {}))
    return old.output_dir


def _resume(output_dir, **values):
    config = RunConfig.from_flat({**RUN, "output_dir": output_dir, **values})
    run_settings.check_resume(output_dir, run_settings.result_settings(config, {}))


def test_a_new_setting_gets_its_flag_with_help_and_default(monkeypatch):
    _add_setting(monkeypatch, "new_knob", 0.25, RESULT)
    flag_values = flags.FlagValues()
    fit_flags.define_flags(flag_values)
    flag = flag_values["new_knob"]
    assert (flag.help, flag.default) == ("What new_knob does.", 0.25)
    flag_values(["fit", "--new_knob=0.5", "--synthetic_queries=10", "--output_dir=o"])
    assert fit_flags.run_config(flag_values).training.new_knob == 0.5
    assert "--new_knob=0.5" in fit_flags.flags_as_flagfile(flag_values)


def test_an_old_run_resumes_with_a_new_result_setting_at_its_default_and_refuses_it_changed(monkeypatch, tmp_path):
    output_dir = _record_old_run(tmp_path)
    _add_setting(monkeypatch, "new_knob", 0.25, RESULT)
    _resume(output_dir)  # the record lacks it: compared as its declared default
    _resume(output_dir, new_knob=0.25)
    with pytest.raises(ConfigError) as refused:
        _resume(output_dir, new_knob=0.5)
    message = str(refused.value)
    assert "\n" not in message and "--new_knob 0.25 -> 0.5;" in message and "holds a run started with other" in message
    assert RunConfig.from_flat({**RUN, "new_knob": 0.5}).result_settings()["new_knob"] == 0.5


def test_a_new_neutral_setting_never_refuses_a_resume(monkeypatch, tmp_path):
    output_dir = _record_old_run(tmp_path)
    _add_setting(monkeypatch, "log_every", 3, NEUTRAL)
    for value in (3, 0, 100):
        _resume(output_dir, log_every=value)
    assert "log_every" in config_lib.result_neutral()
    # A neutral setting still keys a recipe stage (it decides which evaluations choose a model);
    # a LOCAL one (how one invocation runs) does not.
    from esci_tf.recipe.pipeline import _run_settings

    assert _run_settings(RecipeConfig(run=RunConfig.from_flat(RUN)))["log_every"] == 3


def test_a_new_input_setting_is_checked_up_front_and_recorded_by_content_only(monkeypatch):
    _add_setting(monkeypatch, "extra_examples", "", INPUT)
    config = RunConfig.from_flat({**RUN, "extra_examples": "gs://bucket/extra.parquet"})
    assert config.input_paths()["extra_examples"] == "gs://bucket/extra.parquet"
    assert "extra_examples" in config_lib.data_files() and "extra_examples" not in run_settings.result_settings(config, {})


def test_the_recipe_stage_keys_are_todays_from_the_roles():
    """The stage keys derived from the roles are the ones recipe runs recorded when the list was
    written by hand, so every finished stage stays finished."""
    from esci_tf.recipe.pipeline import _run_settings

    run = RunConfig.from_flat(RUN)
    by_hand = set(run.flat()) - {"output_dir", "progress_bar", *config_lib.DATA_FILES, "eval_split",
                                 "eval_fraction", "synthetic_queries", "select_best", "resume", "locales",
                                 "keep_layers"}
    assert set(_run_settings(RecipeConfig(run=run))) == by_hand
    assert _run_settings(RecipeConfig(run=run.replace(locales=("us",))))["locales"] == ("us",)  # `added`: when set
    assert config_lib.RESULT_NEUTRAL == {"eval_every_steps", "checkpoint_every_steps", "progress_bar", "resume",
                                         "tpu_address"}


def _entry_points() -> dict:
    """{entry point: (its flags, defined afresh as it defines them; the classes declaring them)}."""
    found = {}
    for name, define, classes in (
            ("trainers.fit", fit_flags.define_flags, (RunConfig, *config_lib.SECTIONS.values())),
            ("trainers.recipe", recipe_flags.define_flags, (RunConfig, *config_lib.SECTIONS.values(), RecipeConfig)),
            ("trainers.predict", predict_flags.define_flags, (PredictSettings,)),
            ("trainers.ensemble", ensemble_flags.define_flags, (EnsembleSettings,)),
            ("tfrecords.build", build_flags.define_flags, (BuildSettings,))):
        flag_values = flags.FlagValues()
        define(flag_values)
        found[name] = (flag_values, [item for cls in classes for item in declared(cls)])
    return found


ALIASES = {"tfrecords.build": build_flags.ALIASES}  # flag names kept for users' scripts
# Flag names two entry points use for different things (users type them, so they keep their names).
DIFFERENT_MEANINGS = {
    "output_dir": "a run's directory / the shards' directory / the ensemble's directory",
    "batch_size": "fit: the training batch; predict: pairs per model call",
    "tokenizer": "fit: a tokenizer location; build: BACKBONE[:PATH]",
    "members": "recipe: every member; ensemble: the members besides the runs'",
    "seed": "fit: weights, data order and dropout; ensemble: its nested cross-validation; build: --fold_seed's alias",
}


def test_every_flag_of_every_entry_point_is_a_declared_setting():
    for entry_point, (flag_values, settings) in _entry_points().items():
        by_name = {item.name: item for item in settings}
        aliases = ALIASES.get(entry_point, {})
        assert set(flag_values) == set(by_name) | set(aliases), entry_point
        for name, item in by_name.items():
            flag, default = flag_values[name], item.default
            assert flag.help.endswith(item.setting.help), (entry_point, name)  # enum flags: "<a|b>: " first
            assert flag.default == (list(default) if isinstance(default, tuple) else default), (entry_point, name)
            choices = getattr(flag.parser, "enum_values", None)
            assert choices == (None if item.setting.choices is None else list(item.setting.choices)), name


def test_no_flag_is_defined_by_hand():
    """Only trainers/flags/define.py calls absl's DEFINE_ functions in the flag modules and tfrecords.build."""
    paths = [os.path.join(REPO, "trainers", "flags", name) for name in os.listdir(os.path.join(REPO, "trainers", "flags"))
             if name.endswith(".py") and name != "define.py"] + [os.path.join(REPO, "tfrecords", "build.py")]
    for path in paths:
        with open(path) as stream:
            assert not re.search(r"\bDEFINE_?\w*\(", stream.read()), path


def test_shared_flags_have_one_help_and_one_set_of_choices():
    entry_points = {name: flag_values for name, (flag_values, _) in _entry_points().items()}
    names = {}
    for entry_point, flag_values in entry_points.items():
        for name in flag_values:
            names.setdefault(name, []).append(entry_point)
    shared = {name: where for name, where in names.items() if len(where) > 1 and not
              (set(where) == {"trainers.fit", "trainers.recipe"})}  # the recipe takes fit's flags themselves
    assert set(DIFFERENT_MEANINGS) <= set(shared)  # the list names only shared flags
    assert {"examples", "products", "task", "on_bad_rows", "locales", "max_length", "num_shards"} <= set(shared)
    for name, where in shared.items():
        if name in DIFFERENT_MEANINGS:
            continue
        flags_of = [entry_points[e][name] for e in where]
        assert len({f.help for f in flags_of}) == 1, (name, where)
        assert len({tuple(getattr(f.parser, "enum_values", ()) or ()) for f in flags_of}) == 1, (name, where)


def test_build_keeps_its_defaults_and_its_seed_flag():
    """tfrecords.build shares --num_shards and --num_folds with fit and the recipe but keeps its
    defaults (8 and 5, stated where it borrows them); its --seed is the recipe's --fold_seed."""
    flag_values = flags.FlagValues()
    build_flags.define_flags(flag_values)
    flag_values(["build", "--examples=e", "--products=p", "--output_dir=o", "--seed=3"])
    arguments = build_flags.build_arguments(flag_values)
    assert (arguments["seed"], arguments["num_shards"], arguments["num_folds"]) == (3, 8, 5)
    assert (RunConfig().data.num_shards, RecipeConfig(run=RunConfig()).num_folds) == (4, 3)


def test_predict_checks_bounds_by_the_declaration(tmp_path):
    from trainers import predict

    with pytest.raises(FlagError, match=r"^--chunk_size=0: must be >= 1$"):
        predict.run_with_args(["predict", f"--model_dir={tmp_path}", "--examples=x", "--products=y",
                               f"--output={tmp_path / 'o.csv'}", "--chunk_size=0"])
