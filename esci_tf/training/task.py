"""RankingTask: what a run trains, from its RunConfig (the shape of tf-models' base_task).

The task builds the pieces; esci_tf.training.train_lib.run_experiment runs them:
- the preprocessor (tokenizer + pair packing) of the model family;
- the schedule (steps, warmup, evaluation and checkpoint positions) for a training-set size;
- the model (a CrossEncoder, pretrained or random), the optimizer (AdamW or LazyAdamW with
  warmup + linear decay, no weight decay on biases and norms) and the TrainingModel that holds
  the train step (soft-label cross-entropy, FGM/AWP, listwise loss), compiled;
- the training stream and the eval dataset over the run's TFRecords.
bench/quality.py and trainers.recipe build their models through the same task, so there is one
definition of the training recipe.
"""

import dataclasses

from esci_tf.training.config import ConfigError, RunConfig, resolve_location

# Variables AdamW does not decay: biases and layer-norm parameters.
NO_DECAY_NAMES = ["bias", "gamma", "beta", "layer_norm", "layernorm"]
@dataclasses.dataclass(frozen=True)
class Schedule:
    """Batch positions of a run: its length, warmup, and when it evaluates and checkpoints."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    eval_every: int
    checkpoint_every: int


class RankingTask:
    """Builds the inputs, model, optimizer and train step of one RunConfig."""

    def __init__(self, config: RunConfig, data_source: bool = True):
        """data_source False: the run brings its own frames (see RunConfig.validate)."""
        self.config = config.validate(data_source)

    # -- inputs
    def build_preprocessor(self):
        """The PairPreprocessor of the model family, tokenizer from --tokenizer/--checkpoint (or,
        for xlm_roberta without either, the embedded demo vocabulary)."""
        from esci_tf.preprocessing.pair_preprocessor import PairPreprocessor
        from esci_tf.preprocessing.tokenizer_loader import load_tokenizer

        model = self.config.model
        location = resolve_location(model.tokenizer_location,
                                    "tokenizer" if model.tokenizer else "checkpoint")
        return PairPreprocessor(load_tokenizer(model.backbone, location), model.backbone,
                                self.config.data.max_length)

    def schedule(self, num_train: int) -> Schedule:
        """The run's positions for `num_train` training pairs; ConfigError when they cannot work."""
        training, runtime = self.config.training, self.config.runtime
        steps_per_epoch = num_train // training.batch_size
        if steps_per_epoch < 1:
            raise ConfigError(f"--batch_size={training.batch_size} is larger than the {num_train} "
                              "training pairs")
        total = training.steps or training.epochs * steps_per_epoch
        warmup = (training.warmup_steps if training.warmup_steps is not None
                  else int(round(training.warmup_ratio * total)))
        if warmup > total:
            raise ConfigError(f"--warmup_steps={warmup} exceeds the run's {total} steps")
        per_call = runtime.steps_per_execution
        for name in ("eval_every_steps", "checkpoint_every_steps"):
            if getattr(runtime, name) % per_call:
                raise ConfigError(f"--{name}={getattr(runtime, name)} must be a multiple of "
                                  f"--steps_per_execution={per_call}")
        # Default: once an epoch (rounded down to whole compiled calls).
        epoch = max(per_call, steps_per_epoch // per_call * per_call)
        eval_every = runtime.eval_every_steps or epoch
        checkpoint_every = runtime.checkpoint_every_steps or eval_every
        if not runtime.select_best:  # one evaluation, of the final model (the run evaluates it itself)
            eval_every, checkpoint_every = 0, runtime.checkpoint_every_steps or epoch
        return Schedule(steps_per_epoch, total, warmup, eval_every, checkpoint_every)

    def train_dataset(self, data, position: int = 0):
        """The deterministic, endless training stream over data.train_pattern, skipped to
        `position` batches (so a resumed run continues exactly where it stopped)."""
        from esci_tf.records.dataset import ReadOptions, make_dataset

        config = self.config
        options = ReadOptions(training=True, deterministic=True, seed=config.runtime.seed, repeat=True)
        if config.training.listwise_loss_weight:
            # Lists of list_size rows, so a batch still holds about --batch_size pairs.
            options = dataclasses.replace(options, listwise=True, list_size=config.training.list_size,
                                          long_lists="split")
            batch_size = max(1, config.training.batch_size // config.training.list_size)
        else:
            # Length buckets: batches of a few static shapes [B, bucket]; the compiled train step
            # is traced once for [B, None] and XLA compiles once per bucket.
            options = dataclasses.replace(options, length_buckets=config.data.buckets())
            batch_size = config.training.batch_size
        return make_dataset(data.train_pattern, batch_size, config.data.max_length, options).skip(position)

    def eval_batch_size(self) -> int:
        return self.config.training.eval_batch_size or 2 * self.config.training.batch_size

    def eval_dataset(self, data):
        """The eval pairs in file order (every pair once), with their ids and a known size."""
        import tensorflow as tf

        from esci_tf.records.dataset import make_dataset

        batch_size = self.eval_batch_size()
        dataset = make_dataset(data.eval_pattern, batch_size, self.config.data.max_length, training=False,
                               deterministic=True, include_metadata=True)
        num_batches = -(-data.num_eval // batch_size)
        if self.config.runtime.max_eval_batches:
            dataset = dataset.take(self.config.runtime.max_eval_batches)
            num_batches = min(num_batches, self.config.runtime.max_eval_batches)
        # A known size lets Keras' predict stop cleanly at the end of the eval set.
        return dataset.apply(tf.data.experimental.assert_cardinality(num_batches))

    # -- model, optimizer, train step (call inside the strategy scope)
    def backbone_config(self, preprocessor):
        """--backbone_config with the tokenizer's vocabulary size and max_length filled in."""
        if self.config.model.backbone_config is None:
            return None
        config = dict(self.config.model.backbone_config)
        config.setdefault("vocabulary_size", preprocessor.base_vocabulary_size)
        if config["vocabulary_size"] != preprocessor.base_vocabulary_size:
            raise ConfigError(f"--backbone_config vocabulary_size={config['vocabulary_size']} but the "
                              f"tokenizer has {preprocessor.base_vocabulary_size} tokens")
        config.setdefault("max_sequence_length", self.config.data.max_length)
        return config

    def build_model(self, preprocessor):
        """The CrossEncoder: pretrained (--checkpoint) or random (--backbone_config)."""
        from esci_tf.models import build_cross_encoder

        model, runtime = self.config.model, self.config.runtime
        return build_cross_encoder(
            model.backbone, checkpoint=resolve_location(model.checkpoint),
            backbone_config=self.backbone_config(preprocessor), pooling=model.pooling,
            num_pooled_layers=model.num_pooled_layers, multi_sample_dropout=model.multi_sample_dropout,
            cross_attention=model.cross_attention, dropout=model.dropout, dtype_policy=runtime.precision,
            tokenizer_vocabulary_size=preprocessor.base_vocabulary_size,
            separator_token_id=preprocessor.separator_token_id, seed=runtime.seed, keep_layers=model.keep_layers)

    def build_optimizer(self, schedule: Schedule):
        """AdamW (or LazyAdamW) with linear warmup and decay; biases and norms are not decayed."""
        import keras

        from esci_tf.training.lazy_adamw import LazyAdamW
        from esci_tf.training.schedules import WarmupLinearDecay

        training = self.config.training
        optimizer_class = LazyAdamW if training.optimizer == "lazy_adamw" else keras.optimizers.AdamW
        optimizer = optimizer_class(
            learning_rate=WarmupLinearDecay(training.learning_rate, schedule.warmup_steps, schedule.total_steps),
            weight_decay=training.weight_decay, clipnorm=training.clipnorm or None,
            gradient_accumulation_steps=(training.gradient_accumulation
                                         if training.gradient_accumulation > 1 else None))
        optimizer.exclude_from_weight_decay(var_names=NO_DECAY_NAMES)
        return optimizer

    def build_training_model(self, model, schedule: Schedule):
        """(TrainingModel, optimizer): the train step around `model`, compiled."""
        from esci_tf.training.training_model import TrainingModel

        training, runtime = self.config.training, self.config.runtime
        training_model = TrainingModel(
            model, adversarial=None if training.adversarial == "none" else training.adversarial,
            fgm_epsilon=training.fgm_epsilon, awp_lr=training.awp_lr, awp_eps=training.awp_eps,
            awp_start_loss=training.awp_start_loss, label_smoothing=training.label_smoothing,
            listwise_loss_weight=training.listwise_loss_weight, listwise_loss=training.listwise_loss)
        optimizer = self.build_optimizer(schedule)
        training_model.compile(optimizer=optimizer, jit_compile=runtime.jit_compile,
                               steps_per_execution=runtime.steps_per_execution)
        return training_model, optimizer
