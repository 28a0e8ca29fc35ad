"""Ensemble weights on hand-built members: the better member leads, complementary members share,
a duplicated member gets no extra weight, a worse ensemble falls back to the best member, a
locale-restricted member is weighted in its locale only, and the nested estimate's choices never
see the queries they are judged on."""

import numpy as np
import pytest

from esci_tf.recipe import ensemble_fit
from esci_tf.rankers.ensemble import ALL_LOCALES


def _queries(num_queries=60, size=8, seed=0):
    rng = np.random.default_rng(seed)
    gains = np.array([1.0, 0.1, 0.01, 0.0])[rng.integers(0, 4, num_queries * size)]
    query_ids = np.repeat(np.arange(num_queries), size)
    return rng, gains, query_ids, np.array(["us"] * len(gains))


def test_duplicate_gets_no_extra_weight_and_complementary_members_share():
    rng, gains, query_ids, locales = _queries(num_queries=200)
    signal = gains + rng.normal(0, 0.6, len(gains))
    other = gains + rng.normal(0, 0.6, len(gains))  # independent errors: averaging helps
    noise = rng.normal(0, 1, len(gains))
    # An exact copy (rescaled) and a near copy (correlation ~0.999): the weaker of each pair is
    # dropped, so the weights are those of a fit without them.
    members = {"a": signal, "a_copy": signal * 2 + 1, "a_near": signal + rng.normal(0, 0.02, len(gains)),
               "b": other, "noise": noise}
    fit = ensemble_fit.fit_ensemble(members, gains, query_ids, locales, bootstrap_samples=100)
    assert len(fit.dropped[ALL_LOCALES]) == 2 and "b" not in fit.dropped[ALL_LOCALES]
    (kept,) = {"a", "a_copy", "a_near"} - set(fit.dropped[ALL_LOCALES])
    alone = ensemble_fit.fit_ensemble({kept: members[kept], "b": other, "noise": noise}, gains, query_ids, locales,
                                      bootstrap_samples=100)
    assert fit.weights == alone.weights and fit.weights[ALL_LOCALES][kept] > 0 and fit.weights[ALL_LOCALES]["b"] > 0
    assert fit.weights[ALL_LOCALES].get("noise", 0.0) <= 0.1
    assert sum(fit.weights[ALL_LOCALES].values()) == pytest.approx(1.0)
    assert fit.chosen == "ensemble" and fit.nested["num_queries"] == 200 and len(fit.outer) == 5
    nested = fit.nested
    assert nested["ensemble_ndcg"] > nested["best_member_ndcg"] and nested["ensemble_minus_best"]["excludes_zero"]
    # Each query's held-out NDCG is kept, and the estimate is their mean (every query held out once).
    per_query = nested["per_query"]
    assert set(per_query["ensemble"]) == {str(q) for q in np.unique(query_ids)} == set(per_query["best member"])
    assert np.mean(list(per_query["ensemble"].values())) == pytest.approx(nested["ensemble_ndcg"])
    assert np.mean(list(per_query["best member"].values())) == pytest.approx(nested["best_member_ndcg"])


def test_the_best_member_alone_when_the_ensemble_does_not_help_on_held_out_queries():
    rng, gains, query_ids, locales = _queries(seed=1)
    perfect = gains.copy()
    fit = ensemble_fit.fit_ensemble({"perfect": perfect, "noise": rng.normal(0, 1, len(gains))},
                                    gains, query_ids, locales, bootstrap_samples=100)
    assert fit.weights == {ALL_LOCALES: {"perfect": 1.0}}
    assert fit.nested["ensemble_minus_best"]["mean"] == pytest.approx(0.0)


def test_per_locale_weights_with_a_member_of_one_locale():
    rng, gains, query_ids, _ = _queries(num_queries=90, seed=2)
    locales = np.array(["us", "es", "jp"])[query_ids % 3]
    everywhere = gains + rng.normal(0, 1.0, len(gains))
    us_only = np.where(locales == "us", gains + rng.normal(0, 0.05, len(gains)), np.nan)
    scores = {"everywhere": everywhere, "us_only": us_only, "noise": rng.normal(0, 1, len(gains))}
    fit = ensemble_fit.fit_ensemble(scores, gains, query_ids, locales, per_locale=True, min_locale_queries=20,
                                    bootstrap_samples=100)
    assert set(fit.weights) == {ALL_LOCALES, "us", "es", "jp"}
    assert fit.weights["us"].get("us_only", 0.0) >= 0.5  # the near-perfect member leads where it scores
    for group in (ALL_LOCALES, "es", "jp"):  # and is weighted nowhere else
        assert "us_only" not in fit.weights[group] and "us_only" not in fit.groups[group]["ensemble_weights"]
    assert np.isfinite(fit.normalization["us_only"]).all()
    # The ensemble's score of each row uses members that scored it.
    standardized = {n: (s - fit.normalization[n][0]) / fit.normalization[n][1] for n, s in scores.items()}
    assert np.isfinite(ensemble_fit.apply_weights(fit.weights, standardized, locales)).all()
    # A member scoring only some pairs of a locale is refused, naming it and the locale.
    partial = us_only.copy()
    partial[np.flatnonzero(locales == "us")[:3]] = np.nan
    with pytest.raises(ValueError, match=r"member us_only has out-of-fold scores for \d+ of the \d+ us pairs"):
        ensemble_fit.fit_ensemble({**scores, "us_only": partial}, gains, query_ids, locales, per_locale=True)
    keep = ensemble_fit.covered_rows({**scores, "us_only": partial}, locales)
    assert (~keep).sum() == 3  # what the recipe keeps instead: the pairs every covering member scores
    with pytest.raises(ValueError, match="no member covers every locale"):
        ensemble_fit.fit_ensemble({"us_only": us_only}, gains, query_ids, locales, per_locale=True)


def test_nested_choice_never_sees_the_queries_it_is_judged_on():
    rng, gains, query_ids, locales = _queries(num_queries=100, seed=3)
    scores = {"a": gains + rng.normal(0, 0.5, len(gains)), "b": gains + rng.normal(0, 1.5, len(gains))}
    fit = ensemble_fit.fit_ensemble(scores, gains, query_ids, locales, bootstrap_samples=100)
    # Perturb the queries held out by outer part 0: new labels, and member b perfect on them.
    held_out = ensemble_fit.split_queries(query_ids, 5, 0) == 0
    new_gains = np.where(held_out, rng.permutation(gains), gains)
    new_scores = {"a": np.where(held_out, rng.normal(0, 1, len(gains)), scores["a"]),
                  "b": np.where(held_out, new_gains, scores["b"])}
    perturbed = ensemble_fit.fit_ensemble(new_scores, new_gains, query_ids, locales, bootstrap_samples=100)
    assert perturbed.outer[0] == fit.outer[0]  # part 0's choice is made without its queries
    assert perturbed.outer[1:] != fit.outer[1:]  # the other parts' choices do see them
    # Part 0's choice is select() on the other queries, and that choice is what was judged.
    direct = ensemble_fit.select({n: s[~held_out] for n, s in scores.items()}, gains[~held_out],
                                 query_ids[~held_out], locales[~held_out])
    assert fit.outer[0]["weights"] == direct.weights and fit.outer[0]["chosen"] == direct.chosen


def test_local_search_beyond_the_grid_limit_and_the_grid_sums_to_one():
    grid = ensemble_fit.simplex_grid(3, 0.25)
    assert np.allclose(grid.sum(axis=1), 1.0) and len(grid) == 15 == ensemble_fit.grid_size(3, 0.25)
    rng, gains, query_ids, _ = _queries(num_queries=80, seed=4)
    members = {f"m{i}": gains + rng.normal(0, 0.8, len(gains)) for i in range(7)}  # 5005 grid points
    assert ensemble_fit.grid_size(7, 0.1) > ensemble_fit.MAX_GRID_POINTS
    weights, value = ensemble_fit.best_weights(members, list(members), gains, query_ids, 0.1)
    assert sum(weights.values()) == pytest.approx(1.0) and len(weights) >= 3
    single = max(ensemble_fit._Lists(gains, query_ids).mean_ndcg(s) for s in members.values())
    assert value > single


def test_fast_list_ndcg_equals_the_metric_with_ties_and_padding():
    rng, gains, query_ids, _ = _queries(num_queries=40, seed=5)
    query_ids = np.sort(rng.integers(0, 40, len(gains)))  # lists of different lengths
    scores = rng.integers(0, 3, (len(gains), 3)).astype(float)  # many ties
    lists = ensemble_fit._Lists(gains, query_ids)
    for column, value in zip(scores.T, lists.many(scores)):
        expected = np.mean(list(ensemble_fit.per_query_ndcg(gains, column, query_ids).values()))
        assert value == pytest.approx(expected, abs=1e-12)


def _one_padded_array(gains, query_ids, scores):
    """Mean NDCG of each score column as the fit computed it before lists were bucketed: every
    list padded to the longest, one stable sort, padding last."""
    from esci_tf.training import metrics
    from esci_tf.training.query_stats import query_lists

    _, rows, mask = query_lists(query_ids)
    padded = np.where(mask, gains[rows], 0.0)
    counted = (padded > 0).any(axis=1)
    rows, mask, padded = rows[counted], mask[counted], padded[counted]
    discount = metrics.discounts(rows.shape[1])
    ideal = (-np.sort(-padded, axis=1) * discount).sum(axis=1)
    block = np.moveaxis(scores[rows], 2, 0)
    order = np.argsort(np.where(mask, -block, np.inf), axis=2, kind="stable")
    ordered = np.take_along_axis(np.broadcast_to(padded, block.shape), order, axis=2)
    return ((ordered * discount).sum(axis=2) / ideal).mean(axis=1)


@pytest.mark.parametrize("longest", [5, 39, 70, 150])
def test_bucketed_list_ndcg_equals_one_padded_array_bit_for_bit(longest):
    rng = np.random.default_rng(longest)
    top = min(longest, 40)  # many lists near the longest (summed with a tail where it is not a multiple of 8)
    lengths = np.concatenate([rng.integers(1, top + 1, 150), rng.integers(max(1, top - 8), top + 1, 250), [longest]])
    query_ids = rng.permutation(np.repeat(np.arange(len(lengths)) * 3, lengths))
    gains = rng.random(len(query_ids)) * (rng.random(len(query_ids)) > 0.2)  # any gains: sums that round apart
    scores = np.column_stack([rng.normal(size=(len(gains), 3)), rng.integers(0, 3, (len(gains), 2)),  # ties
                              np.where(rng.random(len(gains)) < 0.05, np.nan, rng.normal(size=len(gains)))])
    lists = ensemble_fit._Lists(gains, query_ids)
    assert len(lists.buckets) > 1 or longest in (5, 150)
    assert np.array_equal(lists.many(scores), _one_padded_array(gains, query_ids, scores), equal_nan=True)
    weights = ensemble_fit.simplex_grid(3, 0.25)
    expected = _one_padded_array(gains, query_ids, scores[:, :3] @ weights.T)
    assert np.allclose(lists.weighted(scores[:, :3], weights), expected, rtol=0, atol=1e-12)


def test_inner_fits_reuse_the_groups_ndcg_with_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(7)
    # subsets without the longest list have other widths, where lists of 41 to 45 are summed otherwise
    lengths = np.concatenate([rng.integers(1, 30, 200), rng.integers(41, 46, 100), [61]])
    query_ids = rng.permutation(np.repeat(np.arange(len(lengths)), lengths))
    gains = rng.random(len(query_ids)) * (rng.random(len(query_ids)) > 0.2)  # any gains: sums that round apart
    members = {"a": gains + rng.normal(0, 0.5, len(gains)), "b": gains + rng.normal(0, 0.8, len(gains)),
               "c": np.round(gains + rng.normal(0, 1.0, len(gains)))}
    data = ensemble_fit._Data(members, gains, query_ids, np.array(["us"] * len(gains)))
    grid = ensemble_fit._GroupGrid(data, 0.1)
    for queries in (np.arange(len(lengths)), np.arange(len(lengths) - 1), np.arange(0, len(lengths) - 2, 2)):
        rows = np.isin(query_ids, queries)
        for names in (["a", "b", "c"], ["b", "c"]):
            expected = ensemble_fit.best_weights(members, names, gains, query_ids, 0.1) if rows.all() else \
                ensemble_fit.best_weights({n: s[rows] for n, s in members.items()}, names, gains[rows],
                                          query_ids[rows], 0.1)
            assert grid.best_weights(names, None if rows.all() else rows) == expected
    # the whole fit, with and without the shared NDCGs: the same outputs, bit for bit
    locales = np.where(query_ids % 3 == 0, "es", "us")
    shared = ensemble_fit.outputs(ensemble_fit.fit_ensemble(members, gains, query_ids, locales, per_locale=True,
                                                            bootstrap_samples=50))

    def direct(self, names, rows=None):
        subset = self.data if rows is None else self.data.subset(rows)
        return ensemble_fit.best_weights(subset.scores, names, subset.gains, subset.query_ids, self.step)

    monkeypatch.setattr(ensemble_fit._GroupGrid, "best_weights", direct)
    assert ensemble_fit.outputs(ensemble_fit.fit_ensemble(members, gains, query_ids, locales, per_locale=True,
                                                          bootstrap_samples=50)) == shared


def test_sum_forms_say_when_numpy_sums_a_padded_list_alike():
    rng = np.random.default_rng(0)
    values = rng.random((400, 140))
    differ = 0
    for length in (3, 8, 12, 33, 39, 70, 129):
        widths = sorted({length, max(length, 8), -(-length // 8) * 8, length + 1, length + 7, 40, 72, 128, 136, 150,
                         200, 300} - set(range(length)))
        sums = {w: np.pad(values[:, :length], ((0, 0), (0, w - length))).sum(axis=1) for w in widths}
        for a in widths:
            for b in widths:
                form_a, form_b = (ensemble_fit._sum_form(np.array([length]), w)[0] for w in (a, b))
                if form_a == form_b:
                    assert np.array_equal(sums[a], sums[b]), (length, a, b)
                else:
                    differ += not np.array_equal(sums[a], sums[b])
    assert differ  # the forms matter: lists summed at widths of other forms do not always agree
