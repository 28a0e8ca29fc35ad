"""The ensemble across recipe runs against the first run's own members, nested, on real data.

    python -m bench.ensemble_runs --runs R1,R2,R3 --examples X --products Y --output_dir OUT

Builds two ensembles with esci_tf.ensembles.build (what trainers.ensemble runs): OUT/first from
the first run alone (its cross-encoder and bi-encoder, plus --members: the recipe's own ensemble
without its distill/pseudo stages) and OUT/all from every run. Both are nested (each query's
NDCG comes from weights chosen without it: esci_tf.recipe.ensemble_fit), on the same query
parts, so their per-query NDCGs pair. Prints, over every query and over the long lists (queries
with --min_list_size pairs or more, the queries bench/README's recipe tables use): each member's
out-of-fold NDCG, each ensemble's nested NDCG and its best member's with 95% bootstrap intervals,
and the paired differences ensemble - best member and all - first. --json writes them too.
"""

import os

import numpy as np
from absl import app, flags

from esci_tf import cli, files

flags.DEFINE_list("runs", [], "Finished trainers.recipe runs with aligned folds; the first is the baseline.")
flags.DEFINE_string("examples", None, "The examples file the runs trained on.")
flags.DEFINE_string("products", None, "Its products file.")
flags.DEFINE_list("members", ["bm25", "zero_shot"], "Members besides the runs' (trainers.ensemble --members).")
flags.DEFINE_string("output_dir", None, "Where OUT/first and OUT/all (ranker directories with reports) go.")
flags.DEFINE_integer("min_list_size", 20, "Queries with at least this many pairs are long lists.")
flags.DEFINE_integer("ensemble_folds", 5, "Outer (and inner) query parts of the nested estimate.")
flags.DEFINE_integer("seed", 0, "Seed of the query parts.")
flags.DEFINE_integer("bootstrap_samples", 2000, "Bootstrap resamples of the intervals.")
flags.DEFINE_string("json", None, "Also write the numbers here.")
FLAGS = flags.FLAGS


def _interval(values) -> dict:
    from esci_tf.training.query_stats import bootstrap_interval

    return bootstrap_interval(np.asarray(list(values), np.float64), num_samples=FLAGS.bootstrap_samples)


def _delta(a: dict, b: dict) -> dict:
    from esci_tf.training.query_stats import paired_delta

    return paired_delta(a, b, num_samples=FLAGS.bootstrap_samples)


def _build(name: str, runs) -> dict:
    from esci_tf.ensembles.build import build_ensemble
    from esci_tf.ensembles.settings import EnsembleSettings

    settings = EnsembleSettings(tuple(runs), os.path.join(FLAGS.output_dir, name), FLAGS.examples, FLAGS.products,
                                members=tuple(FLAGS.members), ensemble_folds=FLAGS.ensemble_folds, seed=FLAGS.seed,
                                bootstrap_samples=FLAGS.bootstrap_samples, min_list_size=FLAGS.min_list_size)
    return build_ensemble(settings)


def _show(value: dict) -> str:
    return f"{value['mean']:.4f}  [{value['low']:.4f}, {value['high']:.4f}]"


def _show_delta(value: dict) -> str:
    verdict = "excludes 0" if value["excludes_zero"] else "includes 0"
    return f"{value['mean']:+.4f}  [{value['low']:+.4f}, {value['high']:+.4f}]  {verdict}"


def compare(reports: dict, long_ids: set) -> dict:
    """The numbers the module docstring lists, from the two ensembles' reports."""
    result = {"members": {}, "ensembles": {}, "deltas": {}}
    for member, summary in reports["all"]["members"].items():
        result["members"][member] = {"all": summary["all"]["mean"],
                                     "long_lists": summary.get("long_lists", {}).get("mean")}
    per_query = {}
    for name, report in reports.items():
        nested = report["ensemble"]["nested"]["per_query"]
        per_query[name] = nested
        result["ensembles"][name] = {
            "weights": report["ensemble"]["weights"], "chosen": report["ensemble"]["chosen"]}
        for subset, keep in (("all", None), ("long_lists", long_ids)):
            pick = {k: {q: v for q, v in nested[k].items() if keep is None or q in keep} for k in nested}
            result["ensembles"][name][subset] = {
                "ensemble": _interval(pick["ensemble"].values()),
                "best member": _interval(pick["best member"].values()),
                "ensemble - best member": _delta(pick["ensemble"], pick["best member"])}
    for subset, keep in (("all", None), ("long_lists", long_ids)):
        a = {q: v for q, v in per_query["all"]["ensemble"].items() if keep is None or q in keep}
        b = {q: v for q, v in per_query["first"]["ensemble"].items() if keep is None or q in keep}
        result["deltas"][f"all runs - first run ({subset})"] = _delta(a, b)
    return result


def print_table(result: dict, runs) -> None:
    print(f"runs: {', '.join(runs)} (first: {runs[0]}); members besides the runs': {', '.join(FLAGS.members)}")
    print("\nOut-of-fold NDCG of each member (every query / long lists)")
    for member, value in result["members"].items():
        long_lists = "-" if value["long_lists"] is None else f"{value['long_lists']:.4f}"
        print(f"  {member:<34} {value['all']:.4f} / {long_lists}")
    for subset in ("all", "long_lists"):
        print(f"\nNested NDCG ({'every query' if subset == 'all' else 'long lists'}; 95% bootstrap interval)")
        for name in ("first", "all"):
            numbers = result["ensembles"][name][subset]
            print(f"  {name} ensemble                   {_show(numbers['ensemble'])}")
            print(f"  {name} ensemble's best member     {_show(numbers['best member'])}")
            print(f"  {name} ensemble - best member     {_show_delta(numbers['ensemble - best member'])}")
    print("\nPaired, nested")
    for label, value in result["deltas"].items():
        print(f"  {label:<34} {_show_delta(value)}")
    for name in ("first", "all"):
        print(f"\n{name}: {result['ensembles'][name]['chosen']}; weights {result['ensembles'][name]['weights']}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if len(FLAGS.runs) < 2 or not (FLAGS.examples and FLAGS.products and FLAGS.output_dir):
        raise app.UsageError("give --runs (two or more), --examples, --products and --output_dir")
    from esci_tf.data.reader import read_table

    reports = {"first": _build("first", FLAGS.runs[:1]), "all": _build("all", FLAGS.runs)}
    sizes = read_table(FLAGS.examples).groupby("query_id").size()
    trained = set(reports["all"]["ensemble"]["nested"]["per_query"]["ensemble"])
    long_ids = {str(q) for q in sizes.index[sizes >= FLAGS.min_list_size]} & trained
    result = compare(reports, long_ids)
    result["long_list_queries"], result["queries"] = len(long_ids), len(trained)
    print_table(result, FLAGS.runs)
    if FLAGS.json:
        files.write_json(FLAGS.json, result)


if __name__ == "__main__":
    cli.run(main, "bench.ensemble_runs")
