"""Per-query NDCG (numpy, equal to the keras-rs metric), bootstrap intervals, paired deltas."""

import numpy as np
import pytest

from esci_tf.training import metrics, query_stats
from esci_tf.training.query_stats import (bootstrap_interval, mean_over_seeds, paired_delta, per_query_ndcg,
                                          per_query_random_ndcg)


def test_numpy_ndcg_per_list_equals_the_keras_rs_metric():
    rng = np.random.default_rng(5)
    for _ in range(20):
        size = int(rng.integers(1, 40))
        gains = np.array([1.0, 0.1, 0.01, 0.0])[rng.integers(0, 4, size)][None, :]
        scores = np.round(rng.random((1, size)), 1)  # rounded: ties happen
        expected = metrics.ndcg(gains, scores)["ndcg"]
        got = metrics.ndcg_per_list(gains, scores)[0]
        if np.isnan(expected):
            assert np.isnan(got)
        else:
            assert got == pytest.approx(expected, abs=1e-6)


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


def test_bootstrap_in_chunks_equals_one_draw_of_every_resample(monkeypatch):
    values = np.random.default_rng(1).random(301)
    picks = np.random.default_rng(0).integers(0, len(values), size=(500, len(values)))  # all at once
    low, high = np.quantile(values[picks].mean(axis=1), [0.025, 0.975])
    monkeypatch.setattr(query_stats, "BOOTSTRAP_CELLS", 7 * len(values) + 5)  # 7 resamples at a time
    result = query_stats.bootstrap_interval(values, num_samples=500)
    assert (result["low"], result["high"]) == (low, high)
