"""The flags of trainers.fit: one per esci_tf.training.config.RunConfig setting, same name,
same default and choices (read from the config), and written back as a flagfile.

The config checks the values (RunConfig.validate) and names the flag when one cannot work.
Step counts (--steps, --warmup_steps, --eval_every_steps, --checkpoint_every_steps) count
batches of --batch_size, which is also what Keras learning-rate schedules see; with
--gradient_accumulation=N the optimizer updates the weights every N batches.
"""

import dataclasses
import json
import typing

from absl import flags

from esci_tf import command_line
from esci_tf.data.locales import HELP as LOCALES_HELP
from esci_tf.training import config as config_lib
from trainers.flags import DIRECTORY

FLAGS = flags.FLAGS
BACKBONES = config_lib.BACKBONE_NAMES  # the registry's families
# Settings of which a run takes one: the command line's replaces a flagfile's (esci_tf.command_line).
ALTERNATIVES = ((("examples", "products"), ("train_tfrecords", "eval_tfrecords"), ("synthetic_queries",)),
                (("checkpoint",), ("backbone_config",)))

HELP = {
    # Data.
    "examples": "ESCI examples file (parquet/csv; local or gs://).",
    "products": "ESCI products file matching --examples.",
    "task": "Which task's pairs to use.",
    "train_tfrecords": "Prebuilt training shards (glob), instead of --examples/--products.",
    "eval_tfrecords": "Prebuilt eval shards (glob).",
    "synthetic_queries": "Train on this many queries of generated ESCI-like data "
                         "(esci_tf.data.synthetic; us/es/jp) instead of files.",
    "augment_examples": "Translated pairs (tfrecords.translate's examples.parquet) added to training only: "
                        "translations of the training queries, never of an evaluation query, never evaluated.",
    "augment_products": "The products of --augment_examples (tfrecords.translate's products.parquet).",
    "eval_fraction": "Share of queries held out for validation (query-grouped; rounded to 1/k for k folds); an eval "
                     "set of fewer than 3 queries is refused (its NDCG cannot choose the best model).",
    "eval_split": "'fraction': validate on --eval_fraction of the queries; 'test': validate on the file's "
                  "official test rows (leaked queries removed from training).",
    "on_bad_rows": "Bad input rows stop the run, or are dropped and counted in metrics.json.",
    "num_shards": "TFRecord shards per split when building from parquet.",
    "max_length": "Tokens per (query, product) pair.",
    "length_buckets": "Static length buckets of the training batches, e.g. 32,64,128: each batch holds "
                      "pairs of one bucket, cut to its length (few compiled shapes, less padding). Capped "
                      "at --max_length: larger values are left out and --max_length is always the last "
                      "bucket (so 32,64,128 with --max_length=48 means 32,48). Empty: every batch is "
                      "--max_length long.",
    "field_style": "Product field markers.",
    "prompt_tokens": "Trainable prompt tokens in the template.",
    "entity_markers": "Tag brand/color/size/model entities.",
    "locales": LOCALES_HELP + " Recorded in run_settings.json (a resume with other locales is refused) and so in "
               "the model directory: the model refuses to score rows of another locale.",
    # Model.
    "backbone": "Backbone family.",
    "checkpoint": "Pretrained weights: keras-hub preset name, a Hugging Face or keras-hub directory, or "
                  "package:NAME for a Python package shipping a Hugging Face dir in NAME/model. Unset: "
                  "random init from --backbone_config.",
    "tokenizer": "Tokenizer location (defaults to --checkpoint; unset for xlm_roberta: the embedded demo "
                 "vocabulary).",
    "backbone_config": 'JSON backbone config for random init, e.g. \'{"num_layers": 2, "hidden_dim": 32, ...}\'.',
    "pooling": "Head input.",
    "num_pooled_layers": "Layers mixed by weighted_layers pooling.",
    "multi_sample_dropout": "Dropout masks averaged by the head (0: off).",
    "cross_attention": "Query/product cross-attention head.",
    "dropout": "Head dropout rate.",
    # Training.
    "batch_size": "Global batch size.",
    "eval_batch_size": "Eval batch size (0: 2 x --batch_size).",
    "learning_rate": "Peak AdamW learning rate.",
    "weight_decay": "AdamW weight decay.",
    "optimizer": "keras AdamW, or esci_tf LazyAdamW: sparse (token-embedding) gradients update only the rows "
                 "a batch touches (fast for 250k-token vocabularies; see bench/README.md).",
    "clipnorm": "Gradient norm clip (0: off).",
    "warmup_steps": "Linear warmup steps (overrides --warmup_ratio).",
    "warmup_ratio": "Warmup as a share of all steps.",
    "epochs": "Passes over the training data (if --steps is 0).",
    "steps": "Training batches in all (0: --epochs epochs).",
    "gradient_accumulation": "Batches per optimizer update.",
    "label_smoothing": "Label smoothing of the targets.",
    "adversarial": "Adversarial training.",
    "fgm_epsilon": "FGM perturbation norm.",
    "awp_lr": "AWP adversarial learning rate.",
    "awp_eps": "AWP relative weight perturbation bound.",
    "awp_start_loss": "AWP starts once the loss is below this.",
    "listwise_loss_weight": "Weight of a keras-rs listwise loss over each query's products added to the "
                            "cross-entropy (0: off). On, the training data comes as listwise batches of "
                            "--batch_size // --list_size query lists (long lists split).",
    "listwise_loss": "The listwise loss (esci_tf.training.listwise).",
    "list_size": "Products per training list with --listwise_loss_weight > 0.",
    # Runtime.
    "precision": "Dtype policy.",
    "jit_compile": "XLA-compile the train step.",
    "strategy": "Distribution strategy.",
    "tpu_address": "TPU name or grpc address (strategy tpu).",
    "steps_per_execution": "Batches per compiled call.",
    "seed": "Seed of weights init, data order, splits and dropout.",
    "output_dir": "Where checkpoints, logs and results go.",
    "eval_every_steps": "Evaluate every N batches (0: every epoch, and at the end).",
    "checkpoint_every_steps": "Save a resumable checkpoint every N batches (0: at each evaluation).",
    "max_eval_batches": "Cap on eval batches (0: the whole eval set).",
    "select_best": "Keep the model of the best evaluation (by eval NDCG); --noselect_best evaluates only the "
                   "final model and keeps it (out-of-fold scoring must not choose on the eval queries).",
    "resume": "Continue from the checkpoint in --output_dir if any.",
    "progress_bar": "Show the tqdm progress bar.",
}


def _settings():
    """(name, type, default) of every RunConfig setting, in section order."""
    yield "output_dir", str, None
    for section_class in config_lib.SECTIONS.values():
        hints = typing.get_type_hints(section_class)
        for field in dataclasses.fields(section_class):
            kind = hints[field.name]
            if typing.get_origin(kind) is typing.Union:  # Optional[X]
                kind = next(t for t in typing.get_args(kind) if t is not type(None))
            yield field.name, kind, field.default


def define_flags(flag_values=FLAGS):
    """Define the fit flags once per process, one per RunConfig setting."""
    if "backbone" in flag_values:
        return
    for name, kind, default in _settings():
        text = HELP[name]
        if name in config_lib.CHOICES:
            flags.DEFINE_enum(name, default, list(config_lib.CHOICES[name]), text, flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(name, default, text, flag_values=flag_values)
        elif kind is int:
            flags.DEFINE_integer(name, default, text, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(name, default, text, flag_values=flag_values)
        elif kind is tuple:
            flags.DEFINE_list(name, list(default), text, flag_values=flag_values)
        else:  # str, and dict settings given as JSON text
            flags.DEFINE_string(name, default, text, flag_values=flag_values)


def parse(argv, flag_values=FLAGS) -> list:
    """Parse fit (or recipe) flags as the entry points do: shipped flagfiles by bare name, the
    command line's alternative replacing a flagfile's (esci_tf.command_line)."""
    flag_values.unparse_flags()
    return command_line.parse(flag_values, list(argv), DIRECTORY, ALTERNATIVES)


def run_config(flag_values=FLAGS):
    """The RunConfig the parsed fit flags describe (checked by RunConfig.validate, not here).
    An empty text setting whose default is unset is unset (`--checkpoint=`, `--backbone_config=`)."""
    values = {name: flag_values[name].value for name, _, _ in _settings()}
    for name, kind, default in _settings():
        if kind is not tuple and default is None and values[name] == "":
            values[name] = None
    values["length_buckets"] = tuple(_int_or_text(v) for v in values["length_buckets"] or ())
    if values["backbone_config"] is not None:
        try:
            values["backbone_config"] = json.loads(values["backbone_config"])
        except json.JSONDecodeError as error:
            raise config_lib.ConfigError(f"--backbone_config must be a JSON object ({error})") from error
    return config_lib.RunConfig.from_flat(values)


def _int_or_text(value):
    try:
        return int(value)
    except ValueError:
        return value


def flags_as_flagfile(flag_values=FLAGS) -> str:
    """The fit flags with their values, one --name=value a line (a valid flagfile)."""
    names = {name for name, _, _ in _settings()}
    lines = [flag_values[name].serialize() for name in sorted(names) if flag_values[name].value is not None]
    return "\n".join(lines) + "\n"
