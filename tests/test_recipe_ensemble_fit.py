"""Ensemble weights on hand-built members: the better member leads, complementary members share,
a duplicated member gets no extra weight, a worse ensemble falls back to the best member."""

import numpy as np
import pytest

from esci_tf.recipe import ensemble_fit
from esci_tf.rankers.ensemble import ALL_LOCALES


def _queries(num_queries=60, size=8, seed=0):
    rng = np.random.default_rng(seed)
    gains = np.array([1.0, 0.1, 0.01, 0.0])[rng.integers(0, 4, num_queries * size)]
    query_ids = np.repeat(np.arange(num_queries), size)
    return rng, gains, query_ids, np.array(["us"] * len(gains))


def test_duplicate_gets_no_weight_and_complementary_members_share():
    rng, gains, query_ids, locales = _queries(num_queries=300)
    signal = gains + rng.normal(0, 0.6, len(gains))
    other = gains + rng.normal(0, 0.6, len(gains))  # independent errors: averaging helps
    noise = rng.normal(0, 1, len(gains))
    fit = ensemble_fit.fit_ensemble({"a": signal, "a_copy": signal * 2 + 1, "b": other, "noise": noise},
                                    gains, query_ids, locales, bootstrap_samples=200)
    weights = fit.weights[ALL_LOCALES]
    assert "a_copy" in fit.dropped or "a" in fit.dropped
    assert weights.get("a_copy", 0.0) == 0.0 or weights.get("a", 0.0) == 0.0
    assert weights.get("a", 0.0) + weights.get("a_copy", 0.0) > 0 and weights["b"] > 0
    assert weights.get("noise", 0.0) <= 0.1
    assert sum(weights.values()) == pytest.approx(1.0)
    assert fit.chosen == "ensemble" and fit.check["num_queries"] == 90


def test_the_best_member_alone_when_the_ensemble_does_not_help_on_the_check_queries():
    rng, gains, query_ids, locales = _queries(seed=1)
    perfect = gains.copy()
    fit = ensemble_fit.fit_ensemble({"perfect": perfect, "noise": rng.normal(0, 1, len(gains))},
                                    gains, query_ids, locales, bootstrap_samples=200)
    assert fit.weights == {ALL_LOCALES: {"perfect": 1.0}}


def test_per_locale_weights_need_enough_queries_and_the_grid_sums_to_one():
    grid = ensemble_fit.simplex_grid(3, 0.25)
    assert np.allclose(grid.sum(axis=1), 1.0) and len(grid) == 15
    rng, gains, query_ids, _ = _queries(num_queries=80)
    locales = np.where(query_ids < 40, "us", "es")
    fit = ensemble_fit.fit_ensemble({"a": gains + rng.normal(0, 0.5, len(gains)), "b": rng.normal(0, 1, len(gains))},
                                    gains, query_ids, locales, per_locale=True, bootstrap_samples=200)
    if fit.chosen == "ensemble":
        assert set(fit.weights) == {ALL_LOCALES, "us", "es"}
