"""The recipe's own work at full ESCI size, simulated: time and peak memory of each stage of
trainers.recipe outside the model, at 100k to 2.6M labeled pairs (issue 27).

    python -m bench.recipe_scale --sizes 100000,1000000,2600000
    python -m bench.recipe_scale --smoke_size 3000          # proves it works; numbers mean nothing

Data (untimed): generated pairs in the merged schema the recipe trains on (esci_tf.data.synthetic:
generate_esci's queries, products and labels, dealt into --pairs_per_query-long lists on average,
list sizes 1 to 2 x --pairs_per_query - 1; every query has its own text but one in a thousand,
which repeats another query's text so the fold groups merge some), and a test-sized unlabeled
set (--unlabeled_fraction of the labeled pairs, no labels).

The models are simulated: each fold model's eval_predictions.csv holds class probabilities that
are a noisy softmax of the label; the bi-encoder's out-of-fold scores, BM25's and the zero-shot
cosine's are the gain plus noise of their own size (so the ensemble fit has something to choose),
the teacher's probabilities on the unlabeled pairs are a noisy softmax of a random class. What is
timed is the library's own code the recipe runs on them (esci_tf.recipe), stage by stage:
* folds: the query groups and folds (pipeline.recipe_folds), folds.csv, fold_assignment.csv and
  the folds stage key (its data fingerprint);
* oof: per trained fold the train / held-out split (fine_tune.fold_frames) and its out-of-fold
  rows read back (fine_tune.out_of_fold); oof.csv; the probabilities in row order;
* distill: the self-distillation targets and the frame carrying them;
* pseudo: the unlabeled set's fingerprint, the pairs above --pseudo_threshold with their soft
  labels, pseudo_labels.csv, the ids moved past the labeled ones and the training frame;
* members: the members' out-of-fold scores (cross-encoder from the folds' probabilities,
  bi-encoder from its out-of-fold table) and member_scores.csv;
* ensemble_fit: ensemble_fit.covered_rows and fit_ensemble (nested CV over queries), its outputs
  recorded in the stage's stage.json;
* decisions: the tasks 2 and 3 rule (members.fit_stage_decisions);
* report: report.write_report (report.json and report.png).
Each size runs in its own process. Per stage: wall and CPU seconds (the process's, all its
threads: a loaded machine stretches the first more) and the process's peak RSS while the stage
ran (sampled every 0.05 s; what earlier stages hold is included); per size: the peak RSS of the
whole process and the load average before and after. Prints a table; writes
results/recipe_scale.json.

--end_to_end_queries N also runs the real trainers.recipe on N generated queries with a tiny
backbone and --steps capped, and reports its R/report.json timing_seconds per stage beside the
fine-tunes' own seconds (its "done in" lines) and the rest.
"""

import json
import os
import pathlib
import re
import shlex
import sys
import threading
import time

from absl import app, flags

from bench.preprocess_scale import run_measured
from bench.sample import DEFAULT_RESULTS_DIR, REPO
from esci_tf import cpu

FLAGS = flags.FLAGS
MEMBERS = ("cross_encoder", "bi_encoder", "bm25", "zero_shot")
NOISE = {"bi_encoder": 0.6, "bm25": 1.0, "zero_shot": 1.3}  # each member's score noise (the gain's scale is 1)
REPEATED_TEXT_SHARE = 0.001  # queries that repeat another query's text
TINY_BACKBONE = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64}


def define_flags():
    flags.DEFINE_list("sizes", ["100000"], "Labeled pairs per generated set (e.g. 100000,1000000,2600000); "
                      "empty: only --end_to_end_queries.")
    flags.DEFINE_integer("smoke_size", 0, "Run this one small size instead of --sizes (proves the script works).")
    flags.DEFINE_integer("pairs_per_query", 20, "Mean list size (the full ESCI data: 2.6M pairs, ~130k queries).")
    flags.DEFINE_float("unlabeled_fraction", 0.25, "Unlabeled (pseudo-label) pairs per labeled pair.")
    flags.DEFINE_integer("num_folds", 5, "The recipe's --num_folds.")
    flags.DEFINE_integer("bootstrap_samples", 1000, "The recipe's --bootstrap_samples.")
    flags.DEFINE_integer("seed", 0, "Seed of the generated data and the simulated scores.")
    flags.DEFINE_integer("end_to_end_queries", 0, "Also run the real trainers.recipe on this many generated queries.")
    flags.DEFINE_integer("end_to_end_steps", 4, "--steps of each of its fine-tunes.")
    flags.DEFINE_string("scratch_dir", str(DEFAULT_RESULTS_DIR / "recipe_scale"),
                        "Where the simulated recipe runs write (git-ignored).")
    flags.DEFINE_string("results_dir", str(DEFAULT_RESULTS_DIR), "Where recipe_scale.json is written.")
    flags.DEFINE_integer("child_size", 0, "(internal) run the simulated recipe on this size and print JSON.")


def own_rss() -> int:
    """This process's resident bytes (Linux /proc; it starts no children, so tree_rss's scan of
    every process is not needed)."""
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """The process's peak RSS (bytes) since the last `restart`, sampled in a thread."""

    def __init__(self, every: float = 0.05):
        self.every, self.peak = every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, own_rss())
            time.sleep(self.every)

    def restart(self) -> int:
        """The peak so far (bytes, at least the RSS now); the next one starts from now."""
        now = own_rss()
        peak, self.peak = max(self.peak, now), now
        return peak

    def stop(self):
        self._stop.set()
        self._thread.join()


def generated_pairs(size: int, seed: int, pairs_per_query: int, labeled: bool = True):
    """`size` merged pairs (the columns load_esci gives) of about size / pairs_per_query queries:
    see the module docstring."""
    import numpy as np
    import pandas as pd

    from esci_tf.data.synthetic import generate_esci
    from esci_tf.labels import label_index

    rng = np.random.default_rng(seed)
    examples, products = generate_esci(2000, seed)
    base = examples.merge(products, on=["product_id", "product_locale"], how="left").fillna("")
    base_query_rows = base.groupby("query_id").indices
    base_queries = np.array(list(base_query_rows))
    lengths = rng.integers(1, 2 * pairs_per_query, size // pairs_per_query * 2 + 2)  # more than enough
    lengths = lengths[np.cumsum(lengths) <= size]
    lengths = np.append(lengths, size - lengths.sum()) if lengths.sum() < size else lengths  # the rest: short
    num_queries = len(lengths)
    source_query = rng.choice(base_queries, num_queries)
    # rows: each query's pairs drawn from its source query's pairs (locale, text, labels)
    starts = np.array([base_query_rows[q][0] for q in source_query])
    counts = np.array([len(base_query_rows[q]) for q in source_query])
    query_of_row = np.repeat(np.arange(num_queries), lengths)
    rows = starts[query_of_row] + rng.integers(0, 1 << 30, size) % counts[query_of_row]
    frame = base.iloc[rows].reset_index(drop=True)
    texts = base["query"].to_numpy()[starts]
    repeats = rng.random(num_queries) < REPEATED_TEXT_SHARE
    own = np.char.add(np.char.add(texts.astype(str), " "), np.arange(num_queries).astype(str))
    shared = own[np.maximum(np.arange(num_queries) - 1, 0)]
    query_text = np.where(repeats, shared, own)
    frame["example_id"] = np.arange(size, dtype=np.int64) + seed * 10 ** 9
    frame["query_id"] = query_of_row.astype(np.int64) + seed * 10 ** 8
    frame["query"] = query_text[query_of_row]
    frame["product_id"] = frame["product_id"] + "~" + pd.Series(query_of_row % 97).astype(str)
    frame["label"] = frame["esci_label"].map(label_index).astype(np.int64) if labeled else -1
    if not labeled:
        frame["esci_label"] = ""
    return frame


def noisy_probabilities(classes, rng, strength: float = 2.0):
    """Simulated class probabilities: a softmax of `strength` x one-hot(classes) + unit noise."""
    import numpy as np

    from esci_tf.labels import softmax

    return softmax(strength * np.eye(4)[classes] + rng.normal(size=(len(classes), 4))).astype(np.float32)


class _Stages:
    """Times each stage and samples its peak RSS."""

    def __init__(self):
        self.sampler, self.rows = PeakSampler(), []

    def __call__(self, name: str, body):
        self.sampler.restart()
        start, cpu_start = time.perf_counter(), time.process_time()
        result = body()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        self.rows.append({"stage": name, "seconds": seconds, "cpu_seconds": cpu_seconds,
                          "peak_rss_mib": self.sampler.restart() / 2 ** 20})
        print(f"  {name}: {seconds:.1f} s ({cpu_seconds:.1f} s CPU), peak RSS {self.rows[-1]['peak_rss_mib']:.0f} MiB",
              flush=True)
        return result


def simulate(size: int, root: str) -> dict:
    """The simulated recipe on `size` labeled pairs, writing into `root`: {stages, data}."""
    import numpy as np
    import pandas as pd

    from esci_tf.labels import GAINS
    from esci_tf.recipe import ensemble_fit, fine_tune as tuning, fold_assignment, members as members_lib
    from esci_tf.recipe import pipeline, report as report_lib, targets as targets_lib
    from esci_tf.recipe.config import RecipeConfig
    from esci_tf.recipe.runs import FOLDS_FILE, OOF_FILE
    from esci_tf.recipe.stages import Stage
    from esci_tf.training.config import RunConfig
    from esci_tf.training.train_lib import PREDICTION_COLUMNS, PREDICTIONS_FILE

    config = RecipeConfig(run=RunConfig(), output_dir=root, members=MEMBERS, num_folds=FLAGS.num_folds,
                          bootstrap_samples=FLAGS.bootstrap_samples)
    rng = np.random.default_rng(FLAGS.seed)
    generate = time.perf_counter()
    frame = generated_pairs(size, FLAGS.seed, FLAGS.pairs_per_query)
    unlabeled = generated_pairs(max(int(size * FLAGS.unlabeled_fraction), 1), FLAGS.seed + 1,
                                FLAGS.pairs_per_query, labeled=False)
    labels = frame["label"].to_numpy()
    data = {"pairs": len(frame), "queries": int(frame["query_id"].nunique()), "unlabeled_pairs": len(unlabeled),
            "max_list": int(frame.groupby("query_id").size().max()),
            "frame_mib": float(frame.memory_usage(deep=True).sum() / 2 ** 20),
            "generate_seconds": time.perf_counter() - generate}
    print(f"  data: {data}", flush=True)
    stage = _Stages()
    stages, member_stages = {}, {}

    def folds():
        folds = pipeline.recipe_folds(config, frame)
        settings = pipeline.folds_settings(config, frame, pipeline.TemplateSettings())
        folds_stage = Stage(root, "folds", settings)
        folds_stage.prepare()
        pipeline._write_csv(frame[["example_id"]].assign(fold=folds), folds_stage.path(FOLDS_FILE))
        fold_assignment.write(root, frame["query_id"].to_numpy(), folds)
        return folds, folds_stage

    fold_of_row, folds_stage = stage("folds", folds)
    # the fold models' outputs (simulated, untimed): eval_predictions.csv of each fold's held-out pairs
    for fold in config.folds_to_train:
        held_out = frame[fold_of_row == fold]
        probabilities = noisy_probabilities(held_out["label"].to_numpy(), rng)
        table = held_out[["example_id", "query_id", "product_id", "product_locale", "label"]].assign(
            score=probabilities @ GAINS, **{f"p_{c}": probabilities[:, i] for i, c in enumerate("ESCI")})
        os.makedirs(folds_stage.path(f"fold_{fold}"), exist_ok=True)
        table[[c if c != "locale" else "product_locale" for c in PREDICTION_COLUMNS]].to_csv(
            folds_stage.path(f"fold_{fold}", PREDICTIONS_FILE), index=False)

    def oof():
        parts = []
        for fold in config.folds_to_train:
            _, held_out = tuning.fold_frames(frame, fold_of_row, fold)
            parts.append(tuning.out_of_fold(folds_stage.path(f"fold_{fold}"), held_out, fold))
        model_set = tuning.ModelSet([f"fold_{f}" for f in config.folds_to_train], pd.concat(parts, ignore_index=True))
        pipeline._finish(folds_stage, model_set)
        return model_set, tuning.oof_probabilities(frame, model_set.oof)

    folds_models, oof_probabilities = stage("oof", oof)
    stages["folds"] = (folds_stage, folds_models)

    def distill():
        targets = targets_lib.distill_targets(labels, oof_probabilities, config.hard_label_weight,
                                              config.run.training.label_smoothing)
        return targets, targets_lib.with_targets(frame, targets)

    targets, _ = stage("distill", distill)
    distill_stage = Stage(root, "distill", {"upstream": folds_stage.fingerprint})
    distill_stage.prepare()
    distill_stage.finish({"directories": ["all"]})
    stages["distill"] = (distill_stage, tuning.ModelSet(["all"]))
    teacher = noisy_probabilities(rng.integers(0, 4, len(unlabeled)), rng, strength=3.0)  # simulated

    def pseudo():
        pseudo_stage = Stage(root, "pseudo", {"upstream": distill_stage.fingerprint,
                                              "unlabeled": pipeline._frame_fingerprint(unlabeled)})
        pseudo_stage.prepare()
        pseudo = targets_lib.pseudo_labels(unlabeled, teacher, config.pseudo_threshold)
        pipeline._write_csv(pseudo[["example_id", "query_id", "product_id", *targets_lib.TARGET_COLUMNS]],
                            pseudo_stage.path("pseudo_labels.csv"))
        extra = targets_lib.disjoint_ids(pseudo, frame)
        train = pd.concat([targets_lib.with_targets(frame, targets), extra], ignore_index=True)
        pseudo_stage.finish({"directories": ["all"], "pseudo_pairs": len(pseudo), "unlabeled_pairs": len(unlabeled)})
        return pseudo_stage, len(pseudo), len(train)

    pseudo_stage, data["pseudo_pairs"], data["pseudo_train_pairs"] = stage("pseudo", pseudo)
    stages["pseudo"] = (pseudo_stage, tuning.ModelSet(["all"]))
    gains = GAINS[labels].astype(np.float64)
    bi_oof = folds_models.oof[["example_id", "fold"]].assign(
        score=gains[np.searchsorted(frame["example_id"].to_numpy(), folds_models.oof["example_id"].to_numpy())]
        + rng.normal(scale=NOISE["bi_encoder"], size=len(folds_models.oof)))
    bi_stage = Stage(root, "bi_encoder", {"folds": folds_stage.settings})
    bi_stage.prepare()
    bi_stage.finish({"directories": list(folds_models.directories)})
    member_stages["bi_encoder"] = (bi_stage, tuning.ModelSet(folds_models.directories, bi_oof))
    simulated = {name: gains + rng.normal(scale=NOISE[name], size=len(frame)) for name in ("bm25", "zero_shot")}
    ensemble_stage = Stage(root, "ensemble", {"members": list(MEMBERS)})
    ensemble_stage.prepare()

    def member_scores():
        scores = {"cross_encoder": members_lib.cross_encoder_scores(frame, stages, "pseudo")[0],
                  "bi_encoder": members_lib.bi_encoder_scores(frame, member_stages["bi_encoder"][1]), **simulated}
        pipeline._write_csv(frame[["example_id", "query_id", "product_locale"]].assign(
            **{f"score_{n}": s for n, s in scores.items()}), ensemble_stage.path("member_scores.csv"))
        return scores

    scores = stage("members", member_scores)

    def fit():
        locales = frame["product_locale"].to_numpy()
        usable = ensemble_fit.covered_rows(scores, locales)
        fitted = ensemble_fit.fit_ensemble(
            {n: s[usable] for n, s in scores.items()}, GAINS[labels[usable]], frame["query_id"].to_numpy()[usable],
            locales[usable], config.ensemble_folds, config.correlation_limit, config.weight_step,
            config.per_locale_weights, config.fold_seed, config.bootstrap_samples)
        return fitted

    fitted = stage("ensemble_fit", fit)
    data["weights"], data["chosen"] = fitted.weights, fitted.chosen
    decided = stage("decisions", lambda: members_lib.fit_stage_decisions(frame, stages, "pseudo", config.fold_seed))
    ensemble_stage.finish({**ensemble_fit.outputs(fitted), "decisions": {"stage": decided[0], **decided[1].to_dict()}})
    timing = {row["stage"]: row["seconds"] for row in stage.rows}
    stage("report", lambda: report_lib.write_report(config, frame, fold_of_row, stages, ensemble_stage, timing))
    stage.sampler.stop()
    return {"stages": stage.rows, "data": data}


def child_main(size: int) -> None:
    import shutil

    root = os.path.join(FLAGS.scratch_dir, f"R_{size}")
    shutil.rmtree(root, ignore_errors=True)
    result = simulate(size, root)
    print("RESULT " + json.dumps(result, default=str))


FINE_TUNE_LINE = re.compile(r"^recipe: (.*) done in (\d+) s", re.MULTILINE)


def end_to_end(num_queries: int) -> dict:
    """The real trainers.recipe on generated data with a tiny backbone: its stage timings, the
    fine-tunes' seconds (their progress lines) and the rest."""
    import shutil

    import pandas as pd

    from esci_tf.data.synthetic import write_esci_files

    root = pathlib.Path(FLAGS.scratch_dir) / f"end_to_end_{num_queries}"
    shutil.rmtree(root, ignore_errors=True)
    examples, products = write_esci_files(num_queries, FLAGS.seed, str(root / "train"))
    unlabeled, unlabeled_products = write_esci_files(max(int(num_queries * FLAGS.unlabeled_fraction), 1),
                                                     FLAGS.seed + 1, str(root / "unlabeled"))
    pd.read_parquet(unlabeled).drop(columns=["esci_label"]).to_parquet(unlabeled)
    output = root / "R"
    command = [sys.executable, "-m", "trainers.recipe", f"--examples={examples}", f"--products={products}",
               "--task=all", "--backbone=xlm_roberta", f"--backbone_config={json.dumps(TINY_BACKBONE)}",
               "--max_length=32", "--batch_size=16", f"--steps={FLAGS.end_to_end_steps}", "--num_shards=1",
               "--strategy=cpu", f"--output_dir={output}", f"--pseudo_examples={unlabeled}",
               f"--pseudo_products={unlabeled_products}", "--members=cross_encoder,bm25",
               f"--num_folds={FLAGS.num_folds}", f"--bootstrap_samples={FLAGS.bootstrap_samples}"]
    log = root / "recipe.log"  # the whole output (run_measured keeps only its tail)
    result = run_measured(["sh", "-c", f"exec {shlex.join(command)} > {shlex.quote(str(log))} 2>&1"])
    with open(output / "report.json") as stream:
        report = json.load(stream)
    fine_tunes = [(what, int(seconds)) for what, seconds in FINE_TUNE_LINE.findall(log.read_text())]
    return {"queries": num_queries, "pairs": report["data"]["pairs"], "timing_seconds": report["timing_seconds"],
            "fine_tune_seconds": sum(s for _, s in fine_tunes), "fine_tunes": fine_tunes,
            "wall_seconds": result["seconds"], "peak_rss_mib": result["peak_rss_mib"],
            "load_before": result["load_before"], "load_after": result["load_after"]}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.child_size:
        return child_main(FLAGS.child_size)
    from bench.report import machine_info, write_results

    sizes = [FLAGS.smoke_size] if FLAGS.smoke_size else [int(s) for s in FLAGS.sizes]
    runs = []
    for size in sizes:
        print(f"{size:,} labeled pairs:", flush=True)
        result = run_measured([sys.executable, "-m", "bench.recipe_scale", f"--child_size={size}",
                               f"--scratch_dir={FLAGS.scratch_dir}", f"--pairs_per_query={FLAGS.pairs_per_query}",
                               f"--unlabeled_fraction={FLAGS.unlabeled_fraction}", f"--num_folds={FLAGS.num_folds}",
                               f"--bootstrap_samples={FLAGS.bootstrap_samples}", f"--seed={FLAGS.seed}"])
        line = next(l for l in result["output_tail"].splitlines()[::-1] if l.startswith("RESULT "))
        simulated = json.loads(line[len("RESULT "):])
        runs.append({"size": size, **simulated, "wall_seconds": result["seconds"],
                     "process_peak_rss_mib": result["peak_rss_mib"], "load_before": result["load_before"],
                     "load_after": result["load_after"]})
        print(f"  total {sum(r['seconds'] for r in simulated['stages']):.0f} s of stages, process peak RSS "
              f"{result['peak_rss_mib']:.0f} MiB", flush=True)
    print(f"\n{cpu.describe()}")
    if runs:
        print_table(runs)
    payload = {"settings": {"sizes": sizes, "pairs_per_query": FLAGS.pairs_per_query, "num_folds": FLAGS.num_folds,
                            "unlabeled_fraction": FLAGS.unlabeled_fraction, "members": MEMBERS,
                            "bootstrap_samples": FLAGS.bootstrap_samples, "smoke": bool(FLAGS.smoke_size)},
               "machine": machine_info(), "runs": runs}
    if FLAGS.end_to_end_queries:
        payload["end_to_end"] = end_to_end(FLAGS.end_to_end_queries)
        print(f"\nend to end (trainers.recipe, {FLAGS.end_to_end_queries} queries): {payload['end_to_end']}")
    name = "recipe_scale_smoke" if FLAGS.smoke_size else "recipe_scale" if runs else "recipe_scale_end_to_end"
    print(f"results: {write_results(FLAGS.results_dir, name, payload)}")


def print_table(runs: list) -> None:
    """The markdown table of the simulated runs: per stage, wall s (CPU s) and peak RSS per size."""
    print("| stage | " + " | ".join(f"{r['size']:,} pairs: s (CPU s), peak RSS MiB" for r in runs) + " |")
    print("|---|" + "---|" * len(runs))
    for name in [row["stage"] for row in runs[0]["stages"]]:
        cells = [next(f"{x['seconds']:.1f} s ({x['cpu_seconds']:.1f} CPU), {x['peak_rss_mib']:,.0f}"
                      for x in r["stages"] if x["stage"] == name)
                 for r in runs]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| all stages | " + " | ".join(f"{sum(x['seconds'] for x in r['stages']):.0f} s "
                                         f"({sum(x['cpu_seconds'] for x in r['stages']):.0f} CPU), "
                                         f"{r['process_peak_rss_mib']:,.0f}" for r in runs) + " |")
    print("| load before -> after | " + " | ".join(f"{r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}"
                                                   for r in runs) + " |")


if __name__ == "__main__":
    from esci_tf import cli

    define_flags()
    cli.run(main, "bench.recipe_scale")
