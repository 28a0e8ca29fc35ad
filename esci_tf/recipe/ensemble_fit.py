"""Fitting the ensemble's weights on out-of-fold scores, and checking them on held-out queries.

Rule, in order:
1. Each member's scores are standardised over all out-of-fold pairs (mean, std), the numbers the
   EnsembleRanker applies at prediction time.
2. The queries are split (seeded, by query) into a fitting part and a check part
   (check_fraction of them).
3. Redundancy: members are ranked by their NDCG on the fitting part; a member whose scores
   correlate with a stronger member's at `correlation_limit` or more (Pearson, within each query,
   averaged over queries) gets weight 0 (an exact duplicate always does).
4. Weights: the point of the simplex grid (non-negative, step `weight_step`, summing to 1) with
   the best mean NDCG on the fitting part; ties go to fewer members, then to earlier ones.
5. Check: on the check part, the fitted ensemble against the best single member. If the
   ensemble is worse there, the final ranker is that member alone; otherwise the weights are
   refitted on all queries (per locale too, with per_locale weights, for locales with at least
   MIN_LOCALE_QUERIES queries).
"""

import dataclasses
import itertools
import math

import numpy as np

from esci_tf.rankers.base import ALL_LOCALES
from esci_tf.training import metrics
from esci_tf.training.query_stats import paired_delta, per_query_ndcg, query_lists

MIN_LOCALE_QUERIES = 30


@dataclasses.dataclass
class EnsembleFit:
    """What fit_ensemble chose and measured."""

    weights: dict  # {"all" or locale: {member: weight}}
    normalization: dict  # {member: (mean, std)}
    member_ndcg: dict  # {member: mean NDCG on the fitting part}
    dropped: dict  # {member: (stronger member, correlation)}
    fit_weights: dict  # weights fitted on the fitting part
    check: dict  # NDCG on the check part: ensemble, best member, paired delta
    chosen: str  # "ensemble" or "best member"


def normalization(scores: np.ndarray) -> tuple:
    scores = np.asarray(scores, np.float64)
    std = float(scores.std())
    return float(scores.mean()), (std if std > 0 else 1.0)


def within_query_correlation(a, b, query_ids) -> float:
    """Mean over queries (3+ rows, both varying) of the Pearson correlation of two score lists."""
    _, rows, mask = query_lists(query_ids)
    a, b = np.asarray(a, np.float64)[rows], np.asarray(b, np.float64)[rows]
    values = []
    for x, y, m in zip(a, b, mask):
        x, y = x[m], y[m]
        if len(x) >= 3 and x.std() > 0 and y.std() > 0:
            values.append(float(np.corrcoef(x, y)[0, 1]))
    if not values:  # no query long enough: one correlation over all rows
        flat_a, flat_b = a[mask], b[mask]
        return float(np.corrcoef(flat_a, flat_b)[0, 1]) if flat_a.std() > 0 and flat_b.std() > 0 else 1.0
    return float(np.mean(values))


def simplex_grid(num_members: int, step: float) -> np.ndarray:
    """Every non-negative weight vector with entries in multiples of `step` summing to 1."""
    units = int(round(1.0 / step))
    points = [combo for combo in itertools.product(range(units + 1), repeat=num_members) if sum(combo) == units]
    return np.array(points, np.float64) / units


class _Lists:
    """Padded per-query lists of the rows of some queries, for fast NDCG of many score vectors."""

    def __init__(self, gains, query_ids):
        _, self.rows, self.mask = query_lists(query_ids)
        self.gains = np.asarray(gains, np.float64)[self.rows]
        self.counted = (np.where(self.mask, self.gains, 0) > 0).any(axis=1)

    def mean_ndcg(self, scores) -> float:
        values = metrics.ndcg_per_list(self.gains, np.asarray(scores, np.float64)[self.rows], self.mask)
        return float(np.nanmean(values[self.counted])) if self.counted.any() else float("nan")


def best_weights(standardized: dict, names: list, gains, query_ids, step: float) -> tuple:
    """({name: weight}, mean NDCG) of the best simplex-grid point on these rows."""
    lists = _Lists(gains, query_ids)
    matrix = np.stack([standardized[n] for n in names], axis=1)
    best, best_value = None, -math.inf
    grid = simplex_grid(len(names), step)
    order = np.lexsort((np.arange(len(grid)), (grid > 0).sum(axis=1)))  # fewer members first
    for index in order:
        value = lists.mean_ndcg(matrix @ grid[index])
        if value > best_value + 1e-12:
            best, best_value = grid[index], value
    return {n: float(w) for n, w in zip(names, best) if w > 0}, best_value


def split_queries(query_ids, check_fraction: float, seed: int) -> np.ndarray:
    """Boolean [N]: the rows of the check part (check_fraction of the queries, seeded)."""
    unique = np.unique(query_ids)
    picked = np.random.default_rng(seed).permutation(len(unique))[: int(round(check_fraction * len(unique)))]
    return np.isin(query_ids, unique[picked])


def fit_ensemble(scores: dict, gains, query_ids, locales, check_fraction: float = 0.3,
                 correlation_limit: float = 0.98, weight_step: float = 0.1, per_locale: bool = False,
                 seed: int = 0, bootstrap_samples: int = 1000) -> EnsembleFit:
    """Fit the weights of members' out-of-fold `scores` ({name: [N]}) by the module's rule."""
    gains, query_ids, locales = np.asarray(gains), np.asarray(query_ids), np.asarray(locales)
    norms = {name: normalization(s) for name, s in scores.items()}
    standardized = {name: (np.asarray(s, np.float64) - norms[name][0]) / norms[name][1] for name, s in scores.items()}
    check = split_queries(query_ids, check_fraction, seed)
    fit = ~check
    strength = {name: _Lists(gains[fit], query_ids[fit]).mean_ndcg(s[fit]) for name, s in standardized.items()}
    ranked = sorted(scores, key=lambda n: (-strength[n], list(scores).index(n)))
    kept, dropped = [], {}
    for name in ranked:
        for stronger in kept:
            correlation = within_query_correlation(standardized[name], standardized[stronger], query_ids)
            if correlation >= correlation_limit:
                dropped[name] = (stronger, correlation)
                break
        else:
            kept.append(name)
    fitted, _ = best_weights({n: standardized[n][fit] for n in kept}, kept, gains[fit], query_ids[fit], weight_step)
    ensemble_scores = sum(w * standardized[n] for n, w in fitted.items())
    best = ranked[0]
    on_check = {"ensemble": per_query_ndcg(gains[check], ensemble_scores[check], query_ids[check]),
                best: per_query_ndcg(gains[check], standardized[best][check], query_ids[check])}
    delta = paired_delta(on_check["ensemble"], on_check[best], num_samples=bootstrap_samples)
    report = {"best_member": best, "ensemble_ndcg": float(np.mean(list(on_check["ensemble"].values()))),
              "best_member_ndcg": float(np.mean(list(on_check[best].values()))),
              "ensemble_minus_best": delta, "num_queries": len(on_check["ensemble"])}
    if report["ensemble_ndcg"] < report["best_member_ndcg"]:
        weights, chosen = {ALL_LOCALES: {best: 1.0}}, "best member"
    else:
        final, _ = best_weights(standardized, kept, gains, query_ids, weight_step)
        weights, chosen = {ALL_LOCALES: final}, "ensemble"
        if per_locale:
            for locale in np.unique(locales):
                rows = locales == locale
                if len(np.unique(query_ids[rows])) >= MIN_LOCALE_QUERIES:
                    weights[str(locale)], _ = best_weights({n: standardized[n][rows] for n in kept}, kept,
                                                           gains[rows], query_ids[rows], weight_step)
    return EnsembleFit(weights, norms, strength, dropped, fitted, report, chosen)
