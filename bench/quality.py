"""Ranking quality on real data: the project's recipe, its ablations and baselines, by
query-grouped cross-validation on the ESCI sample's long-list queries.

    python -m bench.quality                       # the full run (hours on 2 CPU cores)
    python -m bench.quality --seeds 0 --folds 2 --max_length 32 --epochs 0.05 \\
        --max_train_pairs 256 --ablations fgm     # a smoke run

Data: the task-1 pairs of ../shared/data/esci_sample. The queries with >= --min_list_size
products (about 100) are split into --folds query-grouped folds; each fold's queries are
evaluated by models trained on every other pair (the other folds and all short-list queries,
which only ever train), so every long-list query is evaluated exactly once per seed.
NDCG: ESCI gains (E 1, S 0.1, C 0.01, I 0) over each query's whole list (keras-rs, ties by row
order), averaged over seeds per query, then over queries; intervals are percentile bootstraps
over queries, deltas use a paired bootstrap (the same resampled queries for both sides).

Methods (--methods): random (expected NDCG of a random order), bm25 (query vs title,
esci_tf.rankers.bm25), zero_shot (untrained MiniLM, cosine of mean-pooled query and title
embeddings, esci_tf.rankers.zero_shot), peer (plain transformers + torch fine-tune:
cross-entropy, AdamW lr 5e-5, --epochs, same weights and token ids), recipe (esci-tf's
fine-tune through run_experiment, the trainer's own call: quality_train.TrickSet's tricks on
the MiniLM flagfile's settings). Ablations (--ablations) switch one trick on and off around the
recipe on the same folds and seeds; the delta is NDCG(with) - NDCG(without).
Writes <results_dir>/quality.json and quality.png (the plot needs matplotlib).
"""

import dataclasses
import functools
import hashlib
import json
import pathlib
import time

import numpy as np
from absl import app, flags

from bench import report, sample

FLAGS = flags.FLAGS
METHODS = ("random", "bm25", "zero_shot", "peer", "recipe", "bi_encoder", "pipeline")
DEFAULT_PIPELINE_FLAGS = str(sample.REPO / "trainers" / "flags" / "esci_sample_minilm_recipe.flags")
log = functools.partial(print, flush=True)  # progress shows up at once in redirected output


def define_flags():
    flags.DEFINE_string("data_dir", str(sample.DEFAULT_DATA_DIR), "Directory of the ESCI sample's parquet files.")
    flags.DEFINE_string("results_dir", str(sample.DEFAULT_RESULTS_DIR), "Where quality.json / quality.png go.")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds (weights init, data order, dropout).")
    flags.DEFINE_integer("folds", 5, "Query-grouped folds of the long-list queries.", lower_bound=2)
    flags.DEFINE_integer("fold_seed", 0, "Seed of the fold assignment (fixed across methods and seeds).")
    flags.DEFINE_integer("min_list_size", 20, "Products a query needs to be evaluated.", lower_bound=2)
    flags.DEFINE_list("methods", list(METHODS), f"Methods to run, a subset of {','.join(METHODS)}.")
    flags.DEFINE_list("ablations", None, "Ablations to run (default: all; '' for none): "
                      "label_smoothing, fgm, awp, multi_sample_dropout, weighted_layers, mean_pooling, "
                      "cross_attention, entity_markers, listwise.")
    flags.DEFINE_integer("max_length", 64, "Tokens per packed (query, product) pair.", lower_bound=8)
    flags.DEFINE_float("epochs", 2.0, "Training epochs of every fine-tune (fractions allowed).", lower_bound=1e-6)
    flags.DEFINE_integer("max_train_pairs", 0, "Train each fold on a random subset of this many "
                         "pairs (0: all).", lower_bound=0)
    flags.DEFINE_integer("batch_size", 32, "Training pairs per step (both sides).", lower_bound=1)
    flags.DEFINE_float("learning_rate", 1e-4, "Peak AdamW learning rate of the recipe.", lower_bound=0.0)
    flags.DEFINE_float("peer_learning_rate", 5e-5, "AdamW learning rate of the peer.", lower_bound=0.0)
    flags.DEFINE_float("listwise_loss_weight", 0.5, "Weight of the listwise term when switched on.",
                       lower_bound=0.0)
    flags.DEFINE_integer("list_size", 16, "Products per listwise training list.", lower_bound=2)
    flags.DEFINE_integer("bootstrap_samples", 2000, "Bootstrap resamples of the queries.", lower_bound=100)
    flags.DEFINE_bool("plot", True, "Write quality.png (needs matplotlib).")
    flags.DEFINE_string("label", "", "Free text stored in the JSON (e.g. 'smoke run').")
    flags.DEFINE_integer("bi_encoder_epochs", 4, "Epochs of the bi_encoder method's fine-tunes.", lower_bound=1)
    flags.DEFINE_float("bi_encoder_learning_rate", 3e-5, "Learning rate of the bi_encoder method's fine-tunes.",
                       lower_bound=0.0)
    flags.DEFINE_string("pipeline_flagfile", DEFAULT_PIPELINE_FLAGS, "The trainers.recipe flagfile the "
                        "pipeline method runs inside each fold (its unlabeled set: the fold's own pairs, "
                        "labels hidden, as the recipe is judged).")
    flags.DEFINE_bool("pipeline_pseudo", True, "The pipeline pseudo-labels each fold's own eval pairs "
                      "(labels hidden); --nopipeline_pseudo runs it without the pseudo stage.")
    flags.DEFINE_string("cache_dir", None, "Where each fine-tune's eval scores are kept (default "
                        "<results_dir>/quality_cache; '' disables): a rerun with the same settings "
                        "reuses them, so a long run resumes and can be split over invocations.")

# Settings that change a fine-tune's scores: those of every fine-tune, and those only the peer or
# only the recipe's configurations read. Each cache key holds the ones of its own side, so tuning
# the recipe (--learning_rate) reuses the peer's finished fine-tunes and the other way round.
CACHE_SETTINGS = ("folds", "fold_seed", "min_list_size", "max_length", "epochs", "max_train_pairs",
                  "batch_size", "data_dir")
PEER_SETTINGS = ("peer_learning_rate",)
RECIPE_SETTINGS = ("learning_rate", "list_size")
SPLIT_SETTINGS = ("folds", "fold_seed", "min_list_size", "max_train_pairs", "data_dir")
PIPELINE_SETTINGS = SPLIT_SETTINGS + ("pipeline_pseudo",)
BI_ENCODER_SETTINGS = ("bi_encoder_epochs", "bi_encoder_learning_rate")
ALL_CACHE_SETTINGS = CACHE_SETTINGS + PEER_SETTINGS + RECIPE_SETTINGS + BI_ENCODER_SETTINGS + ("pipeline_pseudo",)


class ScoreCache:
    """Eval-row scores of finished fine-tunes, one .npy per (config, seed, fold), keyed by the
    settings that change them (CACHE_SETTINGS and its side's PEER_ or RECIPE_SETTINGS) and the eval
    rows; None directory = no cache."""

    def __init__(self, directory, settings: dict, pipeline_flags: str = ""):
        self.directory = pathlib.Path(directory) if directory else None
        self.peer_hash = _settings_hash(settings, CACHE_SETTINGS + PEER_SETTINGS)
        self.recipe_hash = _settings_hash(settings, CACHE_SETTINGS + RECIPE_SETTINGS)
        # The pipeline's fine-tunes take their settings from its flagfile, not from the bench's flags.
        self.pipeline_hash = _settings_hash({**settings, "flagfile": pipeline_flags},
                                            PIPELINE_SETTINGS + ("flagfile",))
        self.bi_encoder_hash = _settings_hash(settings, SPLIT_SETTINGS + BI_ENCODER_SETTINGS)

    def path(self, name: str, seed: int, fold: int, eval_rows) -> pathlib.Path:
        """The file of fine-tune `name` ("peer" or a recipe configuration's key)."""
        rows = hashlib.sha256(np.asarray(eval_rows, np.int64).tobytes()).hexdigest()[:8]
        settings_hash = {"peer": self.peer_hash, "pipeline": self.pipeline_hash,
                         "bi_encoder": self.bi_encoder_hash}.get(name, self.recipe_hash)
        return self.directory / f"{name}-seed{seed}-fold{fold}-{settings_hash}-{rows}.npy"

    def get(self, name, seed, fold, eval_rows):
        if self.directory is None:
            return None
        path = self.path(name, seed, fold, eval_rows)
        if not path.exists():
            return None
        scores = np.load(path)
        if scores.shape != (len(eval_rows),):
            raise ValueError(f"{path}: cached scores have shape {scores.shape}, expected "
                             f"({len(eval_rows)},); delete the file to recompute it")
        return scores

    def put(self, name, seed, fold, eval_rows, scores):
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(name, seed, fold, eval_rows)
        temporary = path.with_suffix(".tmp.npy")
        np.save(temporary, np.asarray(scores, np.float64))
        temporary.replace(path)  # atomic: an interrupted run never leaves a half-written file


def flag_lines(flagfile_text: str) -> str:
    """A flagfile's flags, one per line, without comments and blank lines (what the cache key
    hashes: editing a comment keeps the cached scores).

    >>> flag_lines("# MiniLM\n--steps=4  \n\n  --seed=1\n")
    '--steps=4\n--seed=1'
    """
    lines = (line.strip() for line in flagfile_text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def _settings_hash(settings: dict, names) -> str:
    text = json.dumps({k: settings[k] for k in names}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# Each trick: the TrickSet field it sets, its value on and its value off.
TRICKS = {
    "label_smoothing": ("label_smoothing", 0.1, 0.0), "fgm": ("adversarial", "fgm", "none"),
    "awp": ("adversarial", "awp", "none"), "multi_sample_dropout": ("multi_sample_dropout", 5, 0),
    "weighted_layers": ("pooling", "weighted_layers", "cls"), "mean_pooling": ("pooling", "mean", "cls"),
    "cross_attention": ("cross_attention", True, False), "entity_markers": ("entity_markers", True, False),
    "listwise": ("listwise_loss_weight", None, 0.0),
}


def ablation_table(listwise_loss_weight: float = 0.5):
    """{name: (config with the trick, config without)}: the recipe (quality_train.TrickSet's
    defaults) with the trick switched on and off, everything else as the recipe has it."""
    from bench.quality_train import TrickSet

    recipe = TrickSet()
    table = {}
    for name, (field, on, off) in TRICKS.items():
        on = listwise_loss_weight if on is None else on
        table[name] = (dataclasses.replace(recipe, **{field: on}), dataclasses.replace(recipe, **{field: off}))
    return table


def _subset(names, allowed, flag):
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise app.UsageError(f"--{flag}: unknown {unknown}; choose from {', '.join(allowed)}")
    return list(names)


def _train_rows(train_rows, seed):
    if FLAGS.max_train_pairs and len(train_rows) > FLAGS.max_train_pairs:
        picked = np.random.default_rng(seed).choice(train_rows, FLAGS.max_train_pairs, replace=False)
        return np.sort(picked)
    return train_rows


def cross_validate(data, seed, score_fold, name, log=log, cache=None) -> dict:
    """{query_id: NDCG} of one seed: every fold's eval queries scored by score_fold(train, eval)
    (or read from `cache`, a ScoreCache, when this fine-tune already ran)."""
    from bench.quality_data import fold_rows
    from esci_tf.training.query_stats import per_query_ndcg

    result = {}
    for fold in range(data.num_folds):
        train_rows, eval_rows = fold_rows(data.folds, fold)
        start = time.perf_counter()
        scores = cache.get(name, seed, fold, eval_rows) if cache is not None else None
        cached = scores is not None
        if not cached:
            scores = score_fold(_train_rows(train_rows, seed), eval_rows)
            if cache is not None:
                cache.put(name, seed, fold, eval_rows, scores)
        values = per_query_ndcg(data.gains[eval_rows], scores, data.query_ids[eval_rows])
        overlap = set(values) & set(result)
        if overlap:
            raise RuntimeError(f"queries {sorted(overlap)[:5]} evaluated in two folds")
        result.update(values)
        log(f"  {name} seed {seed} fold {fold}: {len(eval_rows)} eval pairs, "
            f"NDCG {np.mean(list(values.values())):.4f} "
            f"({'cached' if cached else f'{time.perf_counter() - start:.0f} s'})")
    return result


def run_methods(data, methods, configs, seeds, log=log, cache=None) -> dict:
    """{name: [per-seed {query_id: NDCG}]} of the baselines and every recipe config."""
    from bench import quality_train
    from bench.quality_data import take
    from esci_tf.training.query_stats import per_query_ndcg, per_query_random_ndcg
    from esci_tf.rankers.bm25 import BM25Ranker
    from esci_tf.rankers.zero_shot import ZeroShotRanker

    frame, evaluated = data.frame, data.folds >= 0
    labels = frame["label"].to_numpy()
    rows = np.flatnonzero(evaluated)
    results = {}
    if "random" in methods:
        results["random"] = [per_query_random_ndcg(data.gains[evaluated], data.query_ids[evaluated])]
    if "bm25" in methods:
        scores = BM25Ranker.fit_catalog(frame).scores(frame.iloc[rows])
        results["bm25"] = [per_query_ndcg(data.gains[rows], scores, data.query_ids[rows])]
    if "zero_shot" in methods:
        ranker = ZeroShotRanker("bert", quality_train.RECIPE_CHECKPOINT, FLAGS.max_length, FLAGS.max_length)
        scores = ranker.scores(frame.iloc[rows])
        results["zero_shot"] = [per_query_ndcg(data.gains[rows], scores, data.query_ids[rows])]
    for name in results:
        log(f"{name}: NDCG {np.mean(list(results[name][0].values())):.4f} over {len(results[name][0])} queries")
    plain = data.encoded["plain"]
    if "peer" in methods:
        results["peer"] = [cross_validate(data, seed, lambda tr, ev, seed=seed: quality_train.train_peer(
            take(plain, tr), labels[tr], take(plain, ev), seed, FLAGS.epochs, FLAGS.max_length,
            FLAGS.batch_size, FLAGS.peer_learning_rate, log=log), "peer", log, cache) for seed in seeds]
    base = quality_train.base_run_config(FLAGS.max_length, FLAGS.batch_size, FLAGS.learning_rate, FLAGS.list_size)
    runs_dir = pathlib.Path(getattr(cache, "directory", None) or FLAGS.results_dir) / "runs"
    if "bi_encoder" in methods:
        results["bi_encoder"] = [cross_validate(data, seed, lambda tr, ev, seed=seed: quality_train.train_bi_encoder(
            frame, tr, ev, seed, FLAGS.bi_encoder_epochs, FLAGS.bi_encoder_learning_rate, log=log), "bi_encoder", log,
            cache) for seed in seeds]
    if "pipeline" in methods:
        recipe = quality_train.pipeline_config(FLAGS.pipeline_flagfile)
        results["pipeline"] = [cross_validate(data, seed, lambda tr, ev, seed=seed: quality_train.train_pipeline(
            recipe, data, tr, ev, seed, str(runs_dir / f"pipeline-seed{seed}"), FLAGS.pipeline_pseudo, log=log),
            "pipeline", log, cache)
            for seed in seeds]
        results.update(pipeline_stage_results(data, runs_dir, seeds, cache))
    for key, config in configs.items():
        template = data.templates[config.template]
        results[key] = [cross_validate(data, seed, lambda tr, ev, seed=seed, config=config: quality_train.train_recipe(
            base, config, frame.iloc[tr], frame.iloc[ev], template, FLAGS.epochs, seed,
            str(runs_dir / f"{config.key()}-seed{seed}"), log=log), key, log, cache) for seed in seeds]
    return results


# What each stage of the pipeline adds: (name, the stage with it, the one before).
STAGE_STEPS = (("distill", "pipeline stage_distill", "pipeline stage_folds"),
               ("pseudo", "pipeline stage_pseudo", "pipeline stage_distill"),
               ("ensemble vs its cross-encoder", "pipeline", "pipeline stage_pseudo"),
               ("ensemble vs its bi-encoder", "pipeline", "pipeline stage_bi_encoder"))


def pipeline_stage_results(data, runs_dir, seeds, cache) -> dict:
    """{"pipeline <stage>": [per-seed {query_id: NDCG}]}: the eval pairs scored by each stage's
    bagged models, from the components each pipeline fold saved (quality_train.train_pipeline).
    A fold's file counts only if its final scores are the cached pipeline scores of that fold
    (so a file from other settings is never mixed in); a stage missing in any fold is left out."""
    from bench.quality_data import fold_rows
    from bench.quality_train import components_path
    from esci_tf.training.query_stats import per_query_ndcg

    found = {}
    for seed in seeds:
        per_stage = {}
        for fold in range(data.num_folds):
            eval_rows = fold_rows(data.folds, fold)[1]
            path = pathlib.Path(components_path(str(pathlib.Path(runs_dir) / f"pipeline-seed{seed}"), eval_rows))
            final = cache.get("pipeline", seed, fold, eval_rows) if cache is not None else None
            if not path.exists() or final is None:
                continue
            with np.load(path) as saved:
                same_rows = np.array_equal(saved["example_id"], data.frame["example_id"].to_numpy()[eval_rows])
                if not same_rows or not np.allclose(saved["final"], final):
                    log(f"  {path.name}: not this run's pipeline scores; its stages are left out")
                    continue
                for name in saved.files:
                    if name.startswith("stage_"):
                        per_stage.setdefault(name, {})[fold] = per_query_ndcg(
                            data.gains[eval_rows], saved[name], data.query_ids[eval_rows])
        for name, by_fold in per_stage.items():
            if len(by_fold) == data.num_folds:
                found.setdefault(f"pipeline {name}", []).append(
                    {q: v for values in by_fold.values() for q, v in values.items()})
    return {name: per_seed for name, per_seed in found.items() if len(per_seed) == len(seeds)}


def summarize(results: dict, method_names: dict, ablations: dict, log=log) -> dict:
    """Means with intervals per method, per-seed means, ablation deltas and the target deltas."""
    from esci_tf.training.query_stats import bootstrap_interval, mean_over_seeds, paired_delta

    per_query = {name: mean_over_seeds(per_seed) for name, per_seed in results.items()}
    boot = dict(num_samples=FLAGS.bootstrap_samples)
    methods = {}
    for label, key in method_names.items():
        summary = bootstrap_interval(list(per_query[key].values()), **boot)
        summary["per_seed"] = [float(np.mean(list(v.values()))) for v in results[key]]
        summary["config"] = key
        methods[label] = summary
    deltas = {}
    for name, (with_key, without_key) in ablations.items():
        deltas[name] = dict(paired_delta(per_query[with_key], per_query[without_key], **boot),
                            with_config=with_key, without_config=without_key)
    targets = {}
    for lead in ("pipeline", "recipe", "bi_encoder"):
        if lead not in methods:
            continue
        for other in ("recipe", "bi_encoder", "peer", "zero_shot", "bm25", "random"):
            if other in methods and other != lead and f"{other} - {lead}" not in targets:
                targets[f"{lead} - {other}"] = paired_delta(per_query[method_names[lead]],
                                                           per_query[method_names[other]], **boot)
    stages = {name: paired_delta(per_query[method_names[with_key]], per_query[method_names[without_key]], **boot)
              for name, with_key, without_key in STAGE_STEPS
              if with_key in method_names and without_key in method_names}
    width = max([12] + [len(label) for label in methods])
    log("\nNDCG (long-list queries, mean over seeds; 95% bootstrap interval over queries)")
    for label, s in methods.items():
        log(f"  {label:<{width}} {s['mean']:.4f}  [{s['low']:.4f}, {s['high']:.4f}]  n={s['num_queries']}"
            + (f"  per seed {', '.join(f'{v:.4f}' for v in s['per_seed'])}" if len(s["per_seed"]) > 1 else ""))
    for title, table, words in (
            ("Ablations: NDCG(with trick) - NDCG(without)", deltas, ("helps", "hurts", "no clear effect")),
            ("Against the baselines", targets, ("higher", "lower", "no clear difference")),
            ("What each pipeline stage adds", stages, ("helps", "hurts", "no clear effect"))):
        if table:
            log(f"\n{title} (paired bootstrap)")
            for name, d in table.items():
                verdict = words[0] if d["low"] > 0 else words[1] if d["high"] < 0 else words[2]
                log(f"  {name:<30} {d['mean']:+.4f}  [{d['low']:+.4f}, {d['high']:+.4f}]  {verdict}")
    return {"methods": methods, "ablations": deltas, "recipe_vs_baselines": targets,
            "pipeline_stages": stages, "per_query": per_query}


def plot(summary: dict, path) -> bool:
    """quality.png: NDCG per method with intervals, and ablation deltas; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for axis, table, title, xlabel in (
            (left, summary["methods"], "NDCG by method (95% CI)", "NDCG"),
            (right, summary["ablations"], "Ablation: with - without (95% CI)", "delta NDCG")):
        names = list(table)
        means = np.array([table[n]["mean"] for n in names])
        errors = np.array([[table[n]["mean"] - table[n]["low"] for n in names],
                           [table[n]["high"] - table[n]["mean"] for n in names]])
        axis.barh(names, means, xerr=errors if names else None, capsize=3)
        axis.set_title(title)
        axis.set_xlabel(xlabel)
        if table is summary["ablations"]:
            axis.axvline(0.0, color="black", linewidth=0.8)
        elif names:
            axis.set_xlim(max(0.0, float((means - errors[0]).min()) - 0.02), 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from bench.quality_data import load_quality_data

    methods = _subset(FLAGS.methods, METHODS, "methods")
    table = ablation_table(FLAGS.listwise_loss_weight)
    ablation_names = _subset(list(table) if FLAGS.ablations is None else FLAGS.ablations, list(table), "ablations")
    seeds = [int(s) for s in FLAGS.seeds]
    if not seeds:
        raise app.UsageError("--seeds: give at least one seed")
    configs = {}
    recipe_key = None
    if "recipe" in methods:
        from bench.quality_train import TrickSet

        recipe = TrickSet()
        recipe_key = recipe.key()
        configs[recipe_key] = recipe
    for name in ablation_names:
        for config in table[name]:
            configs[config.key()] = config
    templates = sorted({c.template for c in configs.values()} | {"plain"})
    start = time.perf_counter()
    data = load_quality_data(FLAGS.data_dir, FLAGS.folds, FLAGS.fold_seed, FLAGS.max_length,
                             FLAGS.min_list_size, templates)
    evaluated = data.folds >= 0
    log(f"{len(data.frame)} task-1 pairs, {data.frame['query_id'].nunique()} queries; "
          f"{int(evaluated.sum())} pairs of {data.frame.loc[evaluated, 'query_id'].nunique()} "
          f"long-list queries in {FLAGS.folds} folds; {len(configs)} recipe configs x {len(seeds)} seeds")
    cache_dir = (pathlib.Path(FLAGS.results_dir) / "quality_cache" if FLAGS.cache_dir is None
                 else FLAGS.cache_dir)
    pipeline_flags = flag_lines(pathlib.Path(FLAGS.pipeline_flagfile).read_text()) if "pipeline" in methods else ""
    cache = ScoreCache(cache_dir, {name: FLAGS[name].value for name in ALL_CACHE_SETTINGS}, pipeline_flags)
    results = run_methods(data, methods, configs, seeds, cache=cache)
    method_names = {m: m for m in methods if m != "recipe"}
    method_names.update({name: name for name in results if name.startswith("pipeline ")})
    if recipe_key:
        method_names["recipe"] = recipe_key
    ablations = {name: (table[name][0].key(), table[name][1].key()) for name in ablation_names}
    summary = summarize(results, method_names, ablations)
    settings = {name: FLAGS[name].value for name in (
        "seeds", "folds", "fold_seed", "min_list_size", "methods", "ablations", "max_length", "epochs",
        "max_train_pairs", "batch_size", "learning_rate", "peer_learning_rate", "listwise_loss_weight",
        "list_size", "bootstrap_samples", "data_dir")}
    settings["configs"] = {key: dataclasses.asdict(c) for key, c in configs.items()}
    data_info = {"pairs": len(data.frame), "queries": int(data.frame["query_id"].nunique()),
                 "evaluated_pairs": int(evaluated.sum()),
                 "evaluated_queries": int(data.frame.loc[evaluated, "query_id"].nunique())}
    payload = {"bench": "quality", "label": FLAGS.label, "settings": settings, "data": data_info,
               "machine": report.machine_info(), "seconds": time.perf_counter() - start,
               **{k: v for k, v in summary.items() if k != "per_query"},
               "per_query": {k: {str(q): v for q, v in values.items()} for k, values in summary["per_query"].items()}}
    path = report.write_results(FLAGS.results_dir, "quality", payload)
    log(f"\nresults: {path}")
    if FLAGS.plot:
        png = path.with_suffix(".png")
        log(f"plot: {png}" if plot(summary, png) else "plot: skipped (matplotlib is not installed)")


if __name__ == "__main__":
    from esci_tf import cli

    define_flags()
    cli.run(main, "bench.quality")
