"""Per-query NDCG and bootstrap intervals over queries for bench/quality.py."""

import math

import numpy as np

from esci_tf.training import metrics



def per_query_ndcg(gains, scores, query_ids) -> dict:
    """{query_id: NDCG of that query's whole list} (keras-rs via esci_tf.training.metrics.ndcg;
    ties broken by row order). Queries with no positive gain are left out, as in metrics.ndcg."""
    gains, scores, query_ids = np.asarray(gains), np.asarray(scores), np.asarray(query_ids)
    if not len(gains) == len(scores) == len(query_ids):
        raise ValueError(f"{len(gains)} gains, {len(scores)} scores and {len(query_ids)} query ids")
    result = {}
    for query_id in dict.fromkeys(query_ids.tolist()):
        rows = query_ids == query_id
        value = metrics.ndcg(gains[rows][None, :], scores[rows][None, :])["ndcg"]
        if not math.isnan(value):
            result[query_id] = value
    return result


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
    picks = rng.integers(0, len(values), size=(num_samples, len(values)))
    means = values[picks].mean(axis=1)
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
