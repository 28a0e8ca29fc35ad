"""E/report.json and E/report.png of an ensemble across runs.

Numbers are over the labeled pairs each member scored out of fold (esci_tf.recipe.report's
definitions: per-query NDCG with ESCI gains over the whole list, averaged over queries, with a 95%
percentile bootstrap interval over queries; overall, long lists and per locale). The correlation
matrix is the within-query Pearson correlation of two members' scores (averaged over queries, on
the pairs both score), the quantity the correlation rule compares with --correlation_limit. The
ensemble against its best member is the nested estimate of esci_tf.recipe.ensemble_fit.
"""

import os

import numpy as np

from esci_tf import files
from esci_tf.labels import GAINS
from esci_tf.recipe import ensemble_fit, report as recipe_report
from esci_tf.training.query_stats import paired_delta, per_query_ndcg

REPORT_FILE = recipe_report.REPORT_FILE
PLOT_FILE = recipe_report.PLOT_FILE
RULE = ("correlation rule: per weight group, a member correlating (within queries) at --correlation_limit or more "
        "with a stronger member is dropped, so the two share the stronger one's weight and a duplicated member gets "
        "no extra weight; weights per locale over the members that cover it; weights and the fallback to the best "
        "member chosen by cross-validation over queries, nested for the estimate")


def correlations(scores: dict, query_ids) -> dict:
    """{a: {b: within-query correlation on the pairs both score}} (None when they share none)."""
    names = list(scores)
    matrix = {a: {} for a in names}
    for i, a in enumerate(names):
        for b in names[i:]:
            both = ~np.isnan(scores[a]) & ~np.isnan(scores[b])
            value = ensemble_fit.within_query_correlation(scores[a][both], scores[b][both], query_ids[both]) \
                if both.sum() > 1 else None
            matrix[a][b] = matrix[b][a] = value
    return matrix


def nested_deltas(nested: dict, long_queries: set, bootstrap_samples: int) -> dict:
    """The nested ensemble minus its best member: {"all": ..., "long_lists": ...} (paired bootstrap
    over the held-out queries; long lists: the queries with min_list_size pairs or more)."""
    deltas = {"all": nested["ensemble_minus_best"]}
    per_query = nested["per_query"]
    long_ids = {str(q) for q in long_queries}
    ensemble = {q: v for q, v in per_query[ensemble_fit.ENSEMBLE].items() if q in long_ids}
    if ensemble:
        best = {q: v for q, v in per_query[ensemble_fit.BEST_MEMBER].items() if q in long_ids}
        deltas["long_lists"] = {**paired_delta(ensemble, best, num_samples=bootstrap_samples),
                                "ensemble": float(np.mean(list(ensemble.values()))),
                                "best_member": float(np.mean(list(best.values())))}
    return deltas


def write_report(directory: str, frame, scores: dict, fitted, runs: dict, settings: dict,
                 min_list_size: int, bootstrap_samples: int, decided: dict | None = None) -> dict:
    """Compute the report, write E/report.json (and E/report.png with matplotlib); return it.
    `decided`: {"stage": the member whose probabilities decide tasks 2 and 3, **DecisionFit.to_dict()}."""
    gains = GAINS[frame["label"].to_numpy()]
    query_ids = frame["query_id"].to_numpy()
    sizes = frame.groupby("query_id")["query_id"].transform("size").to_numpy()
    long_queries = set(query_ids[sizes >= min_list_size].tolist())
    query_locale = dict(zip(query_ids.tolist(), frame["product_locale"].tolist()))
    members = {}
    for name, values in scores.items():
        scored = ~np.isnan(values)
        per_query = per_query_ndcg(gains[scored], values[scored], query_ids[scored])
        members[name] = {**recipe_report.summaries(per_query, long_queries, query_locale, bootstrap_samples),
                         "scored_pairs": int(scored.sum())}
    fit = ensemble_fit.outputs(fitted)
    report = {
        "settings": settings, "runs": runs,
        "data": {"pairs": int(len(frame)), "queries": int(frame["query_id"].nunique()),
                 "long_list_queries": len(long_queries)},
        "final": directory, "rule": RULE, "stages": {}, "members": members, "correlation": correlations(scores, query_ids),
        "added": {"ensemble - best member (nested)": nested_deltas(fit["nested"], long_queries, bootstrap_samples)},
        "ensemble": fit,
        "decisions": decided,  # tasks 2 and 3: the rule and its out-of-fold micro-F1 (None: no cross-encoder)
    }
    files.write_json(os.path.join(directory, REPORT_FILE), report)
    recipe_report.plot(report, os.path.join(directory, PLOT_FILE))
    return report
