"""The rankers bench/quality.py compares: esci_tf recipe fine-tunes (any trick set), the
peer's plain transformers + torch fine-tune, and zero-shot MiniLM cosine similarity.

Each trainer takes token-id arrays (the same for both sides) and returns ranking scores of
the eval rows (higher ranks first).
"""

import dataclasses
import math

import numpy as np

from bench.quality_data import query_lists


@dataclasses.dataclass(frozen=True)
class RecipeConfig:
    """One set of tricks of the project's recipe (what an ablation switches)."""

    label_smoothing: float = 0.1
    adversarial: str = "fgm"  # "none", "fgm" or "awp"
    multi_sample_dropout: int = 5
    pooling: str = "weighted_layers"
    cross_attention: bool = True
    entity_markers: bool = True
    listwise_loss_weight: float = 0.0

    @property
    def template(self) -> str:
        return "entities" if self.entity_markers else "plain"

    def key(self) -> str:
        """A short stable name of the config, for caching runs and logs."""
        return (f"ls{self.label_smoothing:g}-{self.adversarial}-msd{self.multi_sample_dropout}-"
                f"{self.pooling}-ca{int(self.cross_attention)}-ent{int(self.entity_markers)}-"
                f"lw{self.listwise_loss_weight:g}")


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings shared by every recipe run (the project's MiniLM flagfile)."""

    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    clipnorm: float = 1.0
    list_size: int = 16
    fgm_epsilon: float = 1.0
    awp_lr: float = 1.0
    awp_eps: float = 0.01
    awp_start_loss: float = 0.6
    eval_batch_size: int = 128


def num_steps(num_examples: int, batch_size: int, epochs: float) -> int:
    """Optimizer steps for `epochs` passes (fractions allowed) over num_examples, at least 1."""
    return max(1, int(round(epochs * math.ceil(num_examples / batch_size))))


def _schedule(settings: TrainSettings, total_steps: int):
    """trainers.fit's schedule: linear warmup to the peak, then linear decay to 0."""
    from esci_tf.training.schedules import WarmupLinearDecay

    warmup = int(round(settings.warmup_ratio * total_steps))
    return WarmupLinearDecay(settings.learning_rate, warmup, total_steps)


def train_recipe(config: RecipeConfig, settings: TrainSettings, train: dict, train_labels: np.ndarray,
                 train_query_ids: np.ndarray, eval_features: dict, seed: int, log=print) -> np.ndarray:
    """Fine-tune the MiniLM CrossEncoder with `config`'s tricks; ranking scores of eval rows."""
    import keras
    import tensorflow as tf

    from bench.models import minilm_dir
    from esci_tf.models import build_cross_encoder, ranking_scores
    from esci_tf.training.losses import smoothed_targets
    from esci_tf.training.training_model import TrainingModel

    keras.utils.set_random_seed(seed)
    targets = smoothed_targets(train_labels, config.label_smoothing)
    if config.listwise_loss_weight:
        features, targets = query_lists(train, targets, train_query_ids, settings.list_size)
        batch = max(1, settings.batch_size // settings.list_size)
    else:
        features, batch = train, settings.batch_size
    num_items = len(targets)
    total_steps = num_steps(num_items, batch, settings.epochs)
    dataset = (tf.data.Dataset.from_tensor_slices((features, targets))
               .shuffle(num_items, seed=seed, reshuffle_each_iteration=True)
               .repeat().batch(batch, drop_remainder=True).prefetch(2))
    model = build_cross_encoder(
        "bert", checkpoint=minilm_dir(), pooling=config.pooling,
        multi_sample_dropout=config.multi_sample_dropout, cross_attention=config.cross_attention,
        dtype_policy="float32", seed=seed)
    trainer = TrainingModel(
        model, adversarial=None if config.adversarial == "none" else config.adversarial,
        fgm_epsilon=settings.fgm_epsilon, awp_lr=settings.awp_lr, awp_eps=settings.awp_eps,
        awp_start_loss=settings.awp_start_loss, listwise_loss_weight=config.listwise_loss_weight)
    optimizer = keras.optimizers.AdamW(
        learning_rate=_schedule(settings, total_steps), weight_decay=settings.weight_decay,
        clipnorm=settings.clipnorm or None)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "layer_norm", "layernorm"])
    trainer.compile(optimizer=optimizer)
    history = trainer.fit(dataset, steps_per_epoch=total_steps, epochs=1, verbose=0, shuffle=False)
    log(f"    {config.key()} seed {seed}: {total_steps} steps, final loss {history.history['loss'][-1]:.4f}")
    logits = model.predict(eval_features, batch_size=settings.eval_batch_size, verbose=0)
    return np.asarray(ranking_scores(logits))


def train_peer(train: dict, train_labels: np.ndarray, eval_features: dict, seed: int, epochs: float,
               max_length: int, batch_size: int = 32, learning_rate: float = 5e-5, log=print) -> np.ndarray:
    """The peer's plain fine-tune: transformers AutoModelForSequenceClassification on MiniLM,
    cross-entropy on hard labels, AdamW (lr 5e-5, no weight decay) with linear decay and no
    warmup (the transformers Trainer defaults), the same token ids; ranking scores of eval rows."""
    import torch
    import transformers

    from bench.models import build_peer, get_spec, peer_inputs
    from esci_tf.labels import GAINS

    spec = get_spec("minilm")
    torch.manual_seed(seed)
    model = build_peer(spec)
    inputs = peer_inputs(spec, train, max_length)
    labels = torch.from_numpy(np.asarray(train_labels, np.int64))
    num_items = len(labels)
    total_steps = num_steps(num_items, batch_size, epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    scheduler = transformers.get_linear_schedule_with_warmup(optimizer, 0, total_steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    order, step, loss = torch.randperm(num_items, generator=generator), 0, None
    while step < total_steps:
        for start in range(0, num_items, batch_size):
            if step == total_steps:
                break
            rows = order[start:start + batch_size]
            out = model(**{k: v[rows] for k, v in inputs.items()}, labels=labels[rows])
            loss = out.loss
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
        order = torch.randperm(num_items, generator=generator)
    log(f"    peer seed {seed}: {total_steps} steps, final loss {loss.item():.4f}")
    model.eval()
    eval_inputs = peer_inputs(spec, eval_features, max_length)
    probs = []
    with torch.no_grad():
        for start in range(0, len(eval_inputs["input_ids"]), 128):
            logits = model(**{k: v[start:start + 128] for k, v in eval_inputs.items()}).logits
            probs.append(torch.softmax(logits, dim=-1).numpy())
    return np.concatenate(probs) @ GAINS


def zero_shot_scores(queries, titles, max_length: int, batch_size: int = 128) -> np.ndarray:
    """Cosine similarity of the untrained MiniLM's mean-pooled embeddings of query and title."""
    import keras_hub
    import tensorflow as tf

    from bench.models import minilm_dir
    from esci_tf.models.checkpoints import load_backbone
    from esci_tf.preprocessing import load_tokenizer

    tokenizer = load_tokenizer("bert", minilm_dir())
    backbone = load_backbone("bert", minilm_dir(), dtype="float32")
    packer = keras_hub.layers.MultiSegmentPacker(
        start_value=tokenizer.cls_token_id, end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id, sequence_length=max_length)

    def embed(texts):
        vectors = []
        for start in range(0, len(texts), batch_size):
            token_ids, segment_ids = packer(tokenizer(tf.constant(texts[start:start + batch_size])))
            mask = tf.cast(token_ids != tokenizer.pad_token_id, tf.float32)
            hidden = backbone({"token_ids": token_ids, "segment_ids": segment_ids,
                               "padding_mask": tf.cast(mask, tf.int32)})["sequence_output"]
            pooled = tf.reduce_sum(hidden * mask[..., None], 1) / tf.reduce_sum(mask, 1, keepdims=True)
            vectors.append(tf.math.l2_normalize(pooled, axis=-1).numpy())
        return np.concatenate(vectors)

    unique_queries = list(dict.fromkeys(queries))
    query_vectors = dict(zip(unique_queries, embed(unique_queries)))
    title_vectors = embed(list(titles))
    return np.array([query_vectors[q] @ v for q, v in zip(queries, title_vectors)])
