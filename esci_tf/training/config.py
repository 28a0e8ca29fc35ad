"""The typed configuration of one training run: data, model, training and runtime settings.

Every field has the name of the trainers.fit flag that sets it (`--batch_size` sets
`training.batch_size`), so a flagfile, a RunConfig and the run's config.json say the same
thing. `validate()` checks the settings that do not need the data and raises ConfigError (a
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
from typing import Optional

from esci_tf.choices import BACKBONE_CONFIG_KEYS, BACKBONE_NAMES, LISTWISE_LOSSES, POOLINGS, PRECISION_POLICIES as PRECISIONS
from esci_tf.choices import STRATEGY_NAMES as STRATEGIES
from esci_tf.errors import FlagError
from esci_tf.data.locales import canonical, parse_locales
from esci_tf.data.reader import TASKS

ADVERSARIAL = ("none", "fgm", "awp")
OPTIMIZERS = ("adamw", "lazy_adamw")


class ConfigError(FlagError):
    """A setting that cannot work; the message names the flag (--name)."""


@dataclasses.dataclass
class DataConfig:
    """Where the pairs come from, how they are split, formatted and tokenized."""

    examples: Optional[str] = None
    products: Optional[str] = None
    train_tfrecords: Optional[str] = None
    eval_tfrecords: Optional[str] = None
    synthetic_queries: int = 0
    augment_examples: Optional[str] = None
    augment_products: Optional[str] = None
    task: str = "1"
    eval_split: str = "fraction"
    eval_fraction: float = 0.1
    on_bad_rows: str = "raise"
    num_shards: int = 4
    max_length: int = 128
    length_buckets: tuple = ()
    field_style: str = "text"
    prompt_tokens: int = 0
    entity_markers: bool = False
    locales: tuple = ()

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

    backbone: str = "xlm_roberta"
    checkpoint: Optional[str] = None
    tokenizer: Optional[str] = None
    backbone_config: Optional[dict] = None
    pooling: str = "cls"
    num_pooled_layers: int = 4
    multi_sample_dropout: int = 0
    cross_attention: bool = False
    dropout: float = 0.1

    @property
    def tokenizer_location(self) -> Optional[str]:
        """Where the tokenizer is read from (default: the checkpoint)."""
        return self.tokenizer or self.checkpoint


@dataclasses.dataclass
class TrainingConfig:
    """Loss, optimizer, schedule and batch settings. Step counts count batches of batch_size
    (what the learning-rate schedule sees); with gradient_accumulation=N the weights change
    every N batches."""

    batch_size: int = 32
    eval_batch_size: int = 0
    learning_rate: float = 3e-5
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    clipnorm: float = 1.0
    warmup_steps: Optional[int] = None
    warmup_ratio: float = 0.1
    epochs: int = 1
    steps: int = 0
    gradient_accumulation: int = 1
    label_smoothing: float = 0.0
    adversarial: str = "none"
    fgm_epsilon: float = 1.0
    awp_lr: float = 1.0
    awp_eps: float = 0.01
    awp_start_loss: float = 0.6
    listwise_loss_weight: float = 0.0
    listwise_loss: str = "pairwise_logistic"
    list_size: int = 16


@dataclasses.dataclass
class RuntimeConfig:
    """How and where the run executes, evaluates and checkpoints."""

    precision: str = "float32"
    jit_compile: bool = False
    strategy: str = "auto"
    tpu_address: Optional[str] = None
    steps_per_execution: int = 1
    seed: int = 42
    eval_every_steps: int = 0
    checkpoint_every_steps: int = 0
    max_eval_batches: int = 0
    select_best: bool = True
    resume: bool = True
    progress_bar: bool = True


SECTIONS = {"data": DataConfig, "model": ModelConfig, "training": TrainingConfig,
            "runtime": RuntimeConfig}

# The settings a resumed run may change: they decide when the run evaluates and checkpoints, what
# it prints and where it finds a TPU, not the weights it trains (a resume continues the same
# deterministic stream; evaluations read the model and change nothing). Every other setting
# changes the results, and a resume with a different value is refused (train_lib).
# The settings that name data files the run reads (recorded by content: run_settings).
DATA_FILES = ("examples", "products", "train_tfrecords", "eval_tfrecords", "augment_examples", "augment_products")
RESULT_NEUTRAL = frozenset({"eval_every_steps", "checkpoint_every_steps", "progress_bar", "resume",
                            "tpu_address"})
# Result settings added after runs were recorded, with the default that means "as before": left out
# of what a run records while at that default, so a run recorded before the setting existed still
# resumes (and a recipe stage is still skipped); set, they are recorded and compared.
RECORDED_WHEN_SET = {"locales": ()}


def recorded(values: dict) -> dict:
    """`values` ({setting: value}) without the RECORDED_WHEN_SET settings at their default."""
    return {name: value for name, value in values.items()
            if name not in RECORDED_WHEN_SET or tuple(value or ()) != RECORDED_WHEN_SET[name]}


@dataclasses.dataclass
class RunConfig:
    """One run: its four sections and the directory everything is written to."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    output_dir: Optional[str] = None

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
        esci_tf.cloud_paths.check_inputs: the DATA_FILES, the checkpoint and the tokenizer."""
        return {**{name: getattr(self.data, name) for name in DATA_FILES},
                "checkpoint": self.model.checkpoint, "tokenizer": self.model.tokenizer}

    def result_settings(self) -> dict:
        """{setting name: value} of every setting that changes a run's results: all but
        RESULT_NEUTRAL and output_dir (and RECORDED_WHEN_SET ones at their default)."""
        return recorded({name: value for name, value in self.flat().items()
                         if name != "output_dir" and name not in RESULT_NEUTRAL})

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
             "give both --augment_examples and --augment_products (files tfrecords.translate wrote), or neither")
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


# Settings with a fixed set of values (trainers.fit makes them enum flags).
CHOICES = {
    "task": TASKS, "eval_split": ("fraction", "test"), "on_bad_rows": ("raise", "skip"),
    "field_style": ("text", "tokens"), "backbone": BACKBONE_NAMES, "pooling": POOLINGS,
    "optimizer": OPTIMIZERS, "adversarial": ADVERSARIAL, "listwise_loss": LISTWISE_LOSSES,
    "precision": PRECISIONS, "strategy": STRATEGIES,
}
# (lowest, highest or None) of numeric settings.
BOUNDS = {
    "synthetic_queries": (0, None), "eval_fraction": (0.0, 0.5), "num_shards": (1, None),
    "max_length": (8, None), "prompt_tokens": (0, 8), "num_pooled_layers": (1, None),
    "multi_sample_dropout": (0, None), "dropout": (0.0, 0.9), "batch_size": (1, None),
    "eval_batch_size": (0, None), "learning_rate": (0.0, None), "weight_decay": (0.0, None),
    "clipnorm": (0.0, None), "warmup_steps": (0, None), "warmup_ratio": (0.0, 1.0), "epochs": (1, None),
    "steps": (0, None), "gradient_accumulation": (1, None), "label_smoothing": (0.0, 0.99),
    "fgm_epsilon": (0.0, None), "awp_lr": (0.0, None), "awp_eps": (0.0, None),
    "listwise_loss_weight": (0.0, None), "list_size": (2, None), "steps_per_execution": (1, None),
    "eval_every_steps": (0, None), "checkpoint_every_steps": (0, None), "max_eval_batches": (0, None),
}


def _choices_and_bounds(config):
    values = config.flat()
    for name, choices in CHOICES.items():
        _require(values[name] in choices,
                 f"--{name}={values[name]!r}: expected one of {', '.join(map(str, choices))}")
    for name, (low, high) in BOUNDS.items():
        value = values[name]
        within = value is None or (value >= low and (high is None or value <= high))
        _require(within, f"--{name}={value}: must be >= {low}" + (f" and <= {high}" if high is not None else ""))


_CHECKS = (_output_dir, _data_source, _augmentation, _eval_slice, _length_buckets, _weights, _choices_and_bounds,
           _backbone_config, _tpu, _entity_markers, _locales, _tfrecords_overlap)
