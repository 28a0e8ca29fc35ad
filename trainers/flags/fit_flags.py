"""The flags of trainers.fit (absl), their checks, and writing them back as a flagfile.

Step counts (--steps, --warmup_steps, --eval_every_steps, --checkpoint_every_steps) count
batches of --batch_size, which is also what Keras learning-rate schedules see; with
--gradient_accumulation=N the optimizer updates the weights every N batches.
"""

import json
import os

from absl import flags

from esci_tf.models import registry

FLAGS = flags.FLAGS
BACKBONES = tuple(registry.names())
PACKAGE_PREFIX = "package:"


def define_flags():
    """Define the fit flags once per process."""
    if "backbone" in FLAGS:
        return
    # Data.
    flags.DEFINE_string("examples", None, "ESCI examples file (parquet/csv; local or gs://).")
    flags.DEFINE_string("products", None, "ESCI products file matching --examples.")
    flags.DEFINE_enum("task", "1", ["1", "2", "3", "all"], "Which task's pairs to use.")
    flags.DEFINE_string("train_tfrecords", None, "Prebuilt training shards (glob), instead of "
                        "--examples/--products.")
    flags.DEFINE_string("eval_tfrecords", None, "Prebuilt eval shards (glob).")
    flags.DEFINE_integer("synthetic_queries", 0, "Train on this many queries of generated "
                         "ESCI-like data (esci_tf.data.synthetic; us/es/jp) instead of files.",
                         lower_bound=0)
    flags.DEFINE_float("eval_fraction", 0.1, "Share of queries held out for validation "
                       "(query-grouped; rounded to 1/k for k folds).", lower_bound=0.0,
                       upper_bound=0.5)
    flags.DEFINE_enum("eval_split", "fraction", ["fraction", "test"],
                      "'fraction': validate on --eval_fraction of the queries; 'test': validate "
                      "on the file's official test rows (leaked queries removed from training).")
    flags.DEFINE_enum("on_bad_rows", "raise", ["raise", "skip"],
                      "Bad input rows stop the run, or are dropped and counted in metrics.json.")
    flags.DEFINE_integer("num_shards", 4, "TFRecord shards per split when building from "
                         "parquet.", lower_bound=1)
    # Model.
    flags.DEFINE_enum("backbone", "xlm_roberta", list(BACKBONES), "Backbone family.")
    flags.DEFINE_string("checkpoint", None, "Pretrained weights: keras-hub preset name, a "
                        "Hugging Face or keras-hub directory, or package:NAME for a Python "
                        "package shipping a Hugging Face dir in NAME/model. Unset: random init "
                        "from --backbone_config.")
    flags.DEFINE_string("tokenizer", None, "Tokenizer location (defaults to --checkpoint; "
                        "unset for xlm_roberta: the embedded demo vocabulary).")
    flags.DEFINE_string("backbone_config", None, "JSON backbone config for random init, e.g. "
                        '\'{"num_layers": 2, "hidden_dim": 32, ...}\'.')
    flags.DEFINE_integer("max_length", 128, "Tokens per (query, product) pair.", lower_bound=8)
    flags.DEFINE_list("length_buckets", [], "Static length buckets of the training batches, "
                      "e.g. 32,64,128: each batch holds pairs of one bucket, cut to its length "
                      "(few compiled shapes, less padding). Capped at --max_length: larger "
                      "values are left out and --max_length is always the last bucket (so "
                      "32,64,128 with --max_length=48 means 32,48). Empty: every batch is "
                      "--max_length long.")
    flags.DEFINE_enum("pooling", "cls", ["cls", "weighted_layers"], "Head input.")
    flags.DEFINE_integer("num_pooled_layers", 4, "Layers mixed by weighted_layers pooling.",
                         lower_bound=1)
    flags.DEFINE_integer("multi_sample_dropout", 0, "Dropout masks averaged by the head (0: "
                         "off).", lower_bound=0)
    flags.DEFINE_bool("cross_attention", False, "Query/product cross-attention head.")
    flags.DEFINE_float("dropout", 0.1, "Head dropout rate.", lower_bound=0.0, upper_bound=0.9)
    # Template.
    flags.DEFINE_enum("field_style", "text", ["text", "tokens"], "Product field markers.")
    flags.DEFINE_integer("prompt_tokens", 0, "Trainable prompt tokens in the template.",
                         lower_bound=0, upper_bound=8)
    flags.DEFINE_bool("entity_markers", False, "Tag brand/color/size/model entities.")
    # Optimisation.
    flags.DEFINE_integer("batch_size", 32, "Global batch size.", lower_bound=1)
    flags.DEFINE_integer("eval_batch_size", 0, "Eval batch size (0: 2 x --batch_size).",
                         lower_bound=0)
    flags.DEFINE_float("learning_rate", 3e-5, "Peak AdamW learning rate.", lower_bound=0.0)
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay.", lower_bound=0.0)
    flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lazy_adamw"], "keras AdamW, or "
                      "esci_tf LazyAdamW: sparse (token-embedding) gradients update only the rows "
                      "a batch touches (fast for 250k-token vocabularies; see bench/README.md).")
    flags.DEFINE_float("clipnorm", 1.0, "Gradient norm clip (0: off).", lower_bound=0.0)
    flags.DEFINE_integer("warmup_steps", None, "Linear warmup steps (overrides "
                         "--warmup_ratio).", lower_bound=0)
    flags.DEFINE_float("warmup_ratio", 0.1, "Warmup as a share of all steps.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_integer("epochs", 1, "Passes over the training data (if --steps is 0).",
                         lower_bound=1)
    flags.DEFINE_integer("steps", 0, "Training batches in all (0: --epochs epochs).",
                         lower_bound=0)
    flags.DEFINE_integer("gradient_accumulation", 1, "Batches per optimizer update.",
                         lower_bound=1)
    flags.DEFINE_float("label_smoothing", 0.0, "Label smoothing of the targets.",
                       lower_bound=0.0, upper_bound=0.99)
    flags.DEFINE_enum("adversarial", "none", ["none", "fgm", "awp"], "Adversarial training.")
    flags.DEFINE_float("fgm_epsilon", 1.0, "FGM perturbation norm.", lower_bound=0.0)
    flags.DEFINE_float("awp_lr", 1.0, "AWP adversarial learning rate.", lower_bound=0.0)
    flags.DEFINE_float("awp_eps", 0.01, "AWP relative weight perturbation bound.",
                       lower_bound=0.0)
    flags.DEFINE_float("awp_start_loss", 0.6, "AWP starts once the loss is below this.")
    flags.DEFINE_float("listwise_loss_weight", 0.0, "Weight of a keras-rs listwise loss over "
                       "each query's products added to the cross-entropy (0: off). On, the "
                       "training data comes as listwise batches of --batch_size // --list_size "
                       "query lists (long lists split).", lower_bound=0.0)
    flags.DEFINE_enum("listwise_loss", "pairwise_logistic", ["pairwise_logistic", "list_mle"],
                      "The listwise loss (esci_tf.training.listwise).")
    flags.DEFINE_integer("list_size", 16, "Products per training list with "
                         "--listwise_loss_weight > 0.", lower_bound=2)
    # Execution.
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"], "Dtype policy.")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the train step.")
    flags.DEFINE_enum("strategy", "auto", ["auto", "cpu", "tpu", "mirrored", "multi_worker"],
                      "Distribution strategy.")
    flags.DEFINE_string("tpu_address", None, "TPU name or grpc address (strategy tpu).")
    flags.DEFINE_integer("steps_per_execution", 1, "Batches per compiled call.", lower_bound=1)
    flags.DEFINE_integer("seed", 42, "Seed of weights init, data order, splits and dropout.")
    flags.DEFINE_string("output_dir", None, "Where checkpoints, logs and results go.")
    flags.DEFINE_integer("eval_every_steps", 0, "Evaluate every N batches (0: every epoch, "
                         "and at the end).", lower_bound=0)
    flags.DEFINE_integer("checkpoint_every_steps", 0, "Save a resumable checkpoint every N "
                         "batches (0: at each evaluation).", lower_bound=0)
    flags.DEFINE_integer("max_eval_batches", 0, "Cap on eval batches (0: the whole eval set).",
                         lower_bound=0)
    flags.DEFINE_bool("resume", True, "Continue from the checkpoint in --output_dir if any.")
    flags.DEFINE_bool("progress_bar", True, "Show the tqdm progress bar.")
    _register_validators()


def _register_validators():
    flags.mark_flag_as_required("output_dir")

    @flags.multi_flags_validator(["examples", "products", "train_tfrecords", "eval_tfrecords",
                                  "synthetic_queries"],
                                 message="give one data source: --examples and --products, "
                                         "or --train_tfrecords and --eval_tfrecords, or "
                                         "--synthetic_queries")
    def _data_source(values):
        files = values["examples"] is not None and values["products"] is not None
        records = values["train_tfrecords"] is not None and values["eval_tfrecords"] is not None
        half = ((values["examples"] is None) != (values["products"] is None)
                or (values["train_tfrecords"] is None) != (values["eval_tfrecords"] is None))
        return not half and files + records + bool(values["synthetic_queries"]) == 1

    @flags.multi_flags_validator(["eval_split", "eval_fraction"],
                                 message="--eval_split=fraction needs --eval_fraction > 0")
    def _eval_slice(values):
        return values["eval_split"] != "fraction" or values["eval_fraction"] > 0

    @flags.validator("length_buckets", message="--length_buckets must be strictly increasing "
                                               "positive integers, e.g. 32,64,128")
    def _length_buckets(value):
        try:
            buckets = [int(v) for v in value]
        except ValueError:
            return False
        return buckets == sorted(set(buckets)) and all(b > 0 for b in buckets)

    @flags.multi_flags_validator(["length_buckets", "listwise_loss_weight"],
                                 message="--length_buckets applies to pairwise training data; "
                                         "--listwise_loss_weight > 0 reads query lists at "
                                         "--max_length")
    def _buckets_pairwise(values):
        return not (values["length_buckets"] and values["listwise_loss_weight"])

    @flags.validator("backbone_config", message="--backbone_config must be a JSON object")
    def _backbone_config(value):
        if value is None:
            return True
        try:
            return isinstance(json.loads(value), dict)
        except json.JSONDecodeError:
            return False

    @flags.multi_flags_validator(["checkpoint", "backbone_config"],
                                 message="give --checkpoint (pretrained) or --backbone_config "
                                         "(random init)")
    def _weights(values):
        return values["checkpoint"] is not None or values["backbone_config"] is not None

    @flags.multi_flags_validator(["strategy", "tpu_address"],
                                 message="--tpu_address is only used with --strategy=tpu")
    def _tpu(values):
        return values["tpu_address"] is None or values["strategy"] in ("tpu", "auto")


def length_buckets(cfg):
    """--length_buckets capped at --max_length, which ends them: (32, 64, 128) with
    max_length 48 -> (32, 48); None when the flag is empty (fixed --max_length batches)."""
    if not cfg.length_buckets:
        return None
    kept = [int(b) for b in cfg.length_buckets if int(b) < cfg.max_length]
    return tuple(kept) + (cfg.max_length,)


def resolve_location(value):
    """A --checkpoint/--tokenizer value; package:NAME -> NAME's bundled model directory."""
    if value is None or not value.startswith(PACKAGE_PREFIX):
        return value
    import importlib

    name = value[len(PACKAGE_PREFIX):]
    try:
        module = importlib.import_module(name)
    except ImportError as e:
        raise flags.IllegalFlagValueError(
            f"--checkpoint={value}: cannot import package {name!r} ({e})") from e
    path = os.path.join(os.path.dirname(module.__file__), "model")
    if not os.path.isdir(path):
        raise flags.IllegalFlagValueError(f"--checkpoint={value}: {path} is not a directory")
    return path


def flags_as_flagfile(flag_values=FLAGS) -> str:
    """The fit flags with their values, one --name=value a line (a valid flagfile)."""
    module_flags = flag_values.get_key_flags_for_module(__name__)
    lines = []
    for flag in sorted(module_flags, key=lambda f: f.name):
        if flag.value is None:
            continue
        lines.append(flag.serialize())
    return "\n".join(lines) + "\n"
