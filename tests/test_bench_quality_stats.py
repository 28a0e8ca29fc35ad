"""bench/quality helpers: long-list folds, bootstrap intervals and paired deltas."""

import numpy as np
import pandas as pd
import pytest

from bench.quality_data import fold_rows, long_list_folds
from bench.quality_stats import (bootstrap_interval, mean_over_seeds, paired_delta, per_query_ndcg,
                                 per_query_random_ndcg)


def _frame(list_sizes):
    query_ids = np.repeat(np.arange(len(list_sizes)), list_sizes)
    return pd.DataFrame({"query_id": query_ids, "product_locale": "us"})


def test_long_list_folds_evaluate_each_long_query_once_grouped():
    sizes = [25, 3, 20, 1, 40, 19, 22, 30, 2, 21]
    frame = _frame(sizes)
    folds = long_list_folds(frame, num_folds=3, seed=0, min_list_size=20)
    long_queries = {q for q, n in enumerate(sizes) if n >= 20}
    # Short-list rows never evaluated; each query's rows share one fold.
    assert set(frame.loc[folds == -1, "query_id"]) == set(range(len(sizes))) - long_queries
    assert (frame.assign(f=folds).groupby("query_id")["f"].nunique() == 1).all()
    seen = []
    for fold in range(3):
        train, evaluated = fold_rows(folds, fold)
        assert len(np.intersect1d(train, evaluated)) == 0
        assert len(train) + len(evaluated) == len(frame)
        eval_queries = set(frame["query_id"].iloc[evaluated])
        assert eval_queries and eval_queries <= long_queries
        assert not eval_queries & set(frame["query_id"].iloc[train])  # grouped: no leakage
        assert set(frame.loc[folds == -1, "query_id"]) <= set(frame["query_id"].iloc[train])
        seen.extend(eval_queries)
    assert sorted(seen) == sorted(long_queries)  # every long query exactly once


def test_long_list_folds_need_enough_queries():
    with pytest.raises(ValueError, match="only 1 queries"):
        long_list_folds(_frame([25, 3]), num_folds=2, seed=0)


def test_bootstrap_interval_covers_mean_and_shrinks_with_more_queries():
    rng = np.random.default_rng(0)
    small = bootstrap_interval(rng.normal(0.8, 0.1, 20), seed=1)
    large = bootstrap_interval(rng.normal(0.8, 0.1, 2000), seed=1)
    for s in (small, large):
        assert s["low"] < s["mean"] < s["high"]
    assert large["high"] - large["low"] < (small["high"] - small["low"]) / 3
    # Half-width close to 1.96 standard errors.
    values = rng.normal(0.5, 0.2, 400)
    s = bootstrap_interval(values, num_samples=4000, seed=2)
    se = values.std(ddof=1) / np.sqrt(len(values))
    assert abs((s["high"] - s["low"]) / 2 - 1.96 * se) < 0.2 * 1.96 * se
    constant = bootstrap_interval([0.7] * 5)
    assert constant["low"] == constant["high"] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_interval([])


def test_paired_delta_uses_the_same_queries():
    rng = np.random.default_rng(3)
    base = rng.uniform(0.3, 1.0, 60)  # large spread between queries
    a = {q: base[q] + 0.01 for q in range(60)}
    b = {q: base[q] for q in range(60)}
    b[99] = 0.0  # only in b: ignored
    d = paired_delta(a, b, seed=0)
    assert d["mean"] == pytest.approx(0.01)
    assert d["low"] == pytest.approx(0.01) and d["excludes_zero"]
    # Unpaired intervals of the same data overlap widely; the paired one does not include 0.
    assert bootstrap_interval(list(b.values())[:60])["high"] > bootstrap_interval(list(a.values()))["low"]
    noisy = paired_delta({q: base[q] + rng.normal(0, 0.05) for q in range(60)}, b, seed=0)
    assert noisy["low"] < 0 < noisy["high"] and not noisy["excludes_zero"]


def test_per_query_ndcg_and_seed_mean():
    gains = np.array([1.0, 0.0, 0.1, 0.0, 0.0, 1.0])
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.2, 0.8])
    qids = np.array([7, 7, 7, 8, 8, 9])
    values = per_query_ndcg(gains, scores, qids)
    assert set(values) == {7, 9}  # query 8 has no gain: left out
    disc = 1 / np.log2(np.arange(2, 5))
    assert values[7] == pytest.approx((0.1 * disc[1] + 1.0 * disc[2]) / (1.0 * disc[0] + 0.1 * disc[1]), rel=1e-5)
    assert values[9] == pytest.approx(1.0)
    assert set(per_query_random_ndcg(gains, qids)) == {7, 9}
    assert mean_over_seeds([{1: 0.5, 2: 1.0}, {1: 0.7, 2: 0.0}]) == {1: 0.6, 2: 0.5}
    with pytest.raises(ValueError, match="other queries"):
        mean_over_seeds([{1: 0.5}, {2: 0.5}])
