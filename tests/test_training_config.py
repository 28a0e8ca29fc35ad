"""RunConfig: flat round trip, the flags carry its defaults and choices, checks name the flag."""

import dataclasses
import typing

import pytest

from esci_tf.choices import BACKBONE_CONFIG_KEYS, BACKBONE_NAMES
from esci_tf.training import config as config_lib
from esci_tf.training.config import ConfigError, RunConfig
from trainers import fit
from trainers.flags import fit_flags

VALID = {"synthetic_queries": 10, "backbone_config": {"num_layers": 2}, "output_dir": "/tmp/run"}


def test_flat_round_trip_and_sections():
    config = RunConfig.from_flat({**VALID, "batch_size": 8, "precision": "mixed_bfloat16"})
    assert config.training.batch_size == 8 and config.runtime.precision == "mixed_bfloat16"
    assert RunConfig.from_flat(config.flat()) == config
    assert config.replace(seed=3).runtime.seed == 3 and config.runtime.seed == 42
    names = RunConfig.field_names()
    assert len(names) == len(config.flat()) and names["max_length"] == "data"
    with pytest.raises(ConfigError, match="unknown setting.*batchsize"):
        RunConfig.from_flat({"batchsize": 8})


def test_every_setting_is_a_fit_flag_with_the_same_default():
    defaults = RunConfig().flat()
    for name, value in defaults.items():
        flag = fit.FLAGS[name]
        expected = list(value) if isinstance(value, tuple) else value
        assert flag.default == expected, name
    for name, choices in config_lib.CHOICES.items():
        assert list(fit.FLAGS[name].parser.enum_values) == list(choices), name


@pytest.mark.parametrize("change, flag", [
    ({"batch_size": 0}, "--batch_size"),
    ({"eval_fraction": 0.9}, "--eval_fraction"),
    ({"pooling": "max"}, "--pooling"),
    ({"length_buckets": (16, 8)}, "--length_buckets"),
    ({"length_buckets": (8, 16), "listwise_loss_weight": 1.0}, "--length_buckets applies"),
    ({"backbone_config": None}, "--checkpoint"),
    ({"output_dir": None}, "--output_dir"),
    ({"tpu_address": "x", "strategy": "cpu"}, "--tpu_address"),
    ({"synthetic_queries": 0, "train_tfrecords": "a", "eval_tfrecords": "b", "entity_markers": True},
     "--entity_markers"),
    ({"examples": "e.parquet"}, "give one data source"),
    ({"checkpoint": "xlm_roberta_base_multi"}, "--checkpoint=xlm_roberta_base_multi and --backbone_config"),
    ({"backbone_config": {"num_layers": 2, "hidden_dim": 30, "num_heads": 4}},
     "hidden_dim=30 is not divisible by num_heads=4"),
    ({"backbone_config": {"num_layers": 2, "hiden_dim": 32}}, "unknown key.*hiden_dim.*--backbone=xlm_roberta"),
    ({"backbone_config": {"num_layers": 0}}, "num_layers=0 must be a positive integer"),
    ({"synthetic_queries": 0, "train_tfrecords": "a/*", "eval_tfrecords": "a/*"}, "is --train_tfrecords"),
])
def test_checks_name_the_flag(change, flag):
    with pytest.raises(ConfigError, match=flag):
        RunConfig.from_flat({**VALID, **change}).validate()


def test_a_run_that_brings_its_frames_needs_no_data_source():
    config = RunConfig.from_flat({"backbone_config": {}, "output_dir": "/tmp/run"})
    with pytest.raises(ConfigError, match="data source"):
        config.validate()
    assert config.validate(data_source=False) is config


def test_buckets_are_capped_at_max_length():
    data = dataclasses.replace(config_lib.DataConfig(), max_length=48, length_buckets=(16, 32, 64, 128))
    assert data.buckets() == (16, 32, 48)
    assert config_lib.DataConfig().buckets() is None


def test_flags_map_onto_the_config():
    fit.FLAGS.unparse_flags()
    fit.FLAGS(["fit", "--synthetic_queries=5", '--backbone_config={"num_layers": 2}', "--output_dir=/tmp/x",
               "--length_buckets=8,16", "--nojit_compile", "--label_smoothing=0.1"])
    config = fit_flags.run_config(fit.FLAGS)
    assert config.data.length_buckets == (8, 16) and config.model.backbone_config == {"num_layers": 2}
    assert config.training.label_smoothing == 0.1 and config.output_dir == "/tmp/x"
    fit.FLAGS.unparse_flags()
    fit.FLAGS(["fit", "--backbone_config={not json", "--output_dir=/tmp/x"])
    with pytest.raises(ConfigError, match="--backbone_config must be a JSON object"):
        fit_flags.run_config(fit.FLAGS)


def _constructor_keys(backbone: str) -> tuple:
    """The family's backbone class's constructor arguments (keras-hub's Backbone base and dtype excluded)."""
    import inspect

    import keras_hub

    from esci_tf.models.registry import get_entry

    keys = []
    for klass in get_entry(backbone).backbone_class.__mro__:
        if klass is keras_hub.models.Backbone or not issubclass(klass, keras_hub.models.Backbone):
            break
        if "__init__" in vars(klass):
            for parameter in inspect.signature(klass.__init__).parameters.values():
                if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) and \
                        parameter.name not in ("self", "dtype") and parameter.name not in keys:
                    keys.append(parameter.name)
    return tuple(keys)


@pytest.mark.parametrize("backbone", BACKBONE_NAMES)
def test_backbone_config_keys_are_the_family_class_arguments(backbone):
    """esci_tf.choices lists the keys (the check needs no keras-hub); they are the class's arguments."""
    assert BACKBONE_CONFIG_KEYS[backbone] == _constructor_keys(backbone)


def test_backbone_config_keys_are_checked():
    assert "hidden_activation" in BACKBONE_CONFIG_KEYS["bert"]  # esci_tf's subclass adds it
    RunConfig.from_flat({**VALID, "backbone": "bert",
                         "backbone_config": {"num_layers": 1, "hidden_activation": "gelu"}}).validate()
    with pytest.raises(ConfigError, match="unknown key.*num_layerz for --backbone=xlm_roberta"):
        RunConfig.from_flat({**VALID, "backbone_config": {"num_layerz": 1}}).validate()


def test_tpu_strategy_needs_a_tpu_here_or_an_address():
    from esci_tf.training.tpu_machine import has_local_tpu

    config = RunConfig.from_flat({**VALID, "strategy": "tpu"})
    if has_local_tpu():
        pytest.skip("this machine has a TPU")
    with pytest.raises(ConfigError, match="--strategy=tpu: no TPU on this machine"):
        config.validate()
    config.replace(tpu_address="grpc://10.0.0.2:8470").validate()  # a remote TPU: checked when connecting


def test_every_file_the_run_reads_is_an_input_path_checked_up_front():
    """input_paths() (what the gs:// checks see before anything loads) names every data file
    setting, the augmentation files included, and the weights and tokenizer."""
    from esci_tf.training.config import DATA_FILES

    paths = {name: f"gs://bucket/{name}" for name in DATA_FILES}
    config = RunConfig.from_flat({**paths, "checkpoint": "gs://bucket/ckpt", "tokenizer": "gs://bucket/tok",
                                  "output_dir": "/tmp/run"})
    assert config.input_paths() == {**paths, "checkpoint": "gs://bucket/ckpt", "tokenizer": "gs://bucket/tok"}
    assert {"augment_examples", "augment_products"} <= set(DATA_FILES)
    # Every optional string of the data and model sections names something to read: a new one
    # must be checked up front too.
    path_fields = {f.name for section in ("data", "model") for f in dataclasses.fields(getattr(config, section))
                   if f.type == typing.Optional[str]}
    assert path_fields == set(config.input_paths())
