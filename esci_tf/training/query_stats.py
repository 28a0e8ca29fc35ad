"""Per-query NDCG, intervals over queries and paired differences: how the recipe's report and
bench/quality.py compare rankers.

Per-query NDCG follows esci_tf.training.metrics (ESCI gains over the whole list, ties broken by
row order, queries without a positive gain left out). Intervals are percentile bootstraps over
queries; a difference of two rankers resamples the same queries for both (paired).

>>> per_query_ndcg([1.0, 0.0, 0.1, 0.0], [0.2, 0.9, 0.5, 0.1], ["q1", "q1", "q2", "q2"])
{'q1': 0.6309297535714575, 'q2': 1.0}
"""

import math

import numpy as np

from esci_tf.training import metrics

BOOTSTRAP_CELLS = 1 << 22  # resampled values held at once (32 MiB)


def query_lists(query_ids):
    """(query ids in first-seen order, [Q, N] row index per list position, [Q, N] mask)."""
    query_ids = np.asarray(query_ids)
    codes, uniques = _first_seen_codes(query_ids)
    counts = np.bincount(codes, minlength=len(uniques))
    order = np.argsort(codes, kind="stable")
    rows = np.zeros((len(uniques), counts.max() if len(counts) else 0), np.int64)
    mask = np.zeros(rows.shape, bool)
    position = np.arange(len(order)) - np.repeat(np.cumsum(counts) - counts, counts)
    rows[codes[order], position] = order
    mask[codes[order], position] = True
    return uniques, rows, mask


def _first_seen_codes(values):
    _, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first))
    return rank[inverse], values[np.sort(first)]


def per_query_ndcg(gains, scores, query_ids) -> dict:
    """{query_id: NDCG of that query's whole list} (metrics.ndcg_per_list, which equals the
    keras-rs metric of metrics.ndcg per list; ties broken by row order). Queries with no
    positive gain are left out."""
    gains, scores, query_ids = np.asarray(gains, np.float64), np.asarray(scores, np.float64), np.asarray(query_ids)
    if not len(gains) == len(scores) == len(query_ids):
        raise ValueError(f"{len(gains)} gains, {len(scores)} scores and {len(query_ids)} query ids")
    if not len(gains):
        return {}
    uniques, rows, mask = query_lists(query_ids)
    values = metrics.ndcg_per_list(gains[rows], scores[rows], mask)
    return {q.item() if hasattr(q, "item") else q: float(v) for q, v in zip(uniques, values) if not math.isnan(v)}


def per_query_random_ndcg(gains, query_ids) -> dict:
    """{query_id: expected NDCG of a uniformly random order} (metrics.random_ndcg)."""
    gains, query_ids = np.asarray(gains), np.asarray(query_ids)
    result = {}
    for query_id in dict.fromkeys(query_ids.tolist()):
        value = metrics.random_ndcg(gains[query_ids == query_id][None, :])
        if not math.isnan(value):
            result[query_id] = value
    return result


def bootstrap_interval(values, num_samples: int = 2000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Mean of per-query values and its percentile bootstrap interval (queries resampled)."""
    values = np.asarray(values, np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"need a non-empty 1-D array of per-query values, got shape {values.shape}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    # the resamples a few at a time (the generator's stream, so the picks, are those of one draw)
    chunk = max(1, BOOTSTRAP_CELLS // len(values))
    means = np.concatenate([values[rng.integers(0, len(values), size=(min(chunk, num_samples - start), len(values)))]
                            .mean(axis=1) for start in range(0, num_samples, chunk)])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high),
            "confidence": confidence, "num_queries": int(len(values))}


def aligned(a: dict, b: dict) -> tuple:
    """Two {query_id: value} maps as arrays over their common queries (sorted ids)."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two methods share no evaluated query")
    return np.array([a[q] for q in common]), np.array([b[q] for q in common])


def paired_delta(a: dict, b: dict, **kwargs) -> dict:
    """Mean of a - b over common queries and its paired bootstrap interval (the same resampled
    queries for both), plus "excludes_zero"."""
    x, y = aligned(a, b)
    result = bootstrap_interval(x - y, **kwargs)
    result["excludes_zero"] = bool(result["low"] > 0 or result["high"] < 0)
    return result


def mean_over_seeds(per_seed: list) -> dict:
    """{query_id: mean over seeds} of per-seed {query_id: value} maps (every seed must have
    the same queries)."""
    if not per_seed:
        raise ValueError("no seeds")
    keys = set(per_seed[0])
    for i, values in enumerate(per_seed[1:], start=1):
        if set(values) != keys:
            raise ValueError(f"seed run {i} evaluated other queries than seed run 0")
    return {q: float(np.mean([values[q] for values in per_seed])) for q in sorted(keys)}
