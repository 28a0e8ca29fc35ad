"""The ensemble's weights, fitted on out-of-fold scores and chosen by nested cross-validation over
queries.

Members' scores are {name: [N]}, NaN on the pairs a member has no out-of-fold score for (another
locale, a fold its run did not train). A member covers a locale when it scores every pair of
that locale; a member scoring only some of a locale's pairs is refused (ValueError naming it, the
locale and a pair without a score: it would be weighted on pairs it has no out-of-fold score
for; `covered_rows` gives the rows a caller may keep instead). A member is weighted only in the
groups it covers.

The procedure (`select`), on the out-of-fold scores of some queries:
1. Standardise each member's scores over the pairs it scores (mean, std: the numbers the
   EnsembleRanker applies at prediction time).
2. Groups: "all" (every pair; the members covering every locale) and, with per_locale, each
   locale with at least min_locale_queries queries (its pairs; the members covering it, so a
   us-only member is weighted in "us" alone). Other locales are scored with the "all" weights.
3. Correlation rule, per group: members are ranked by their mean NDCG on the group's queries
   (ties: the order given); a member whose scores correlate with a stronger kept member's at
   `correlation_limit` or more (Pearson within each query, averaged over queries) is dropped,
   so the two share one weight, the stronger member's (the weaker is dropped, not averaged in):
   a duplicated member gets no extra weight.
4. Weights, per group: the point of the simplex grid over the kept members (non-negative, step
   weight_step, summing to 1) with the best mean NDCG on the group's queries; ties go to fewer
   members, then to earlier ones. A grid of more than MAX_GRID_POINTS points is searched
   locally instead: from the best member alone, the best move of one step of weight from one
   member to another, until none improves.
5. Fallback, per group, by inner cross-validation: the queries are split (seeded) into `folds`
   parts; for each part, steps 3-4 run on the other parts and are judged on it against the best
   member (the member covering the group with the best NDCG on the other parts). The group keeps
   its weights (steps 3-4 on all its queries) when their mean NDCG over the held-out parts is at
   least the best member's; otherwise its best member (on all its queries) alone.

Nested estimate (`fit_ensemble`): the queries are split (seeded, another split) into `folds`
outer parts; for each, `select` runs on the other parts only (its standardisation, correlation
rule, weights and fallback never see the held-out queries) and its ensemble is judged on the
held-out part against the best member of each group chosen on the same other parts. The
per-query NDCG of both over every query gives the paired bootstrap interval of the ensemble
minus its best member. The final weights are `select` on every query.
"""

import dataclasses
import functools
import itertools
import json
import math

import numpy as np

from esci_tf.rankers.base import ALL_LOCALES
from esci_tf.recipe.config import MIN_LOCALE_QUERIES
from esci_tf.training import metrics
from esci_tf.training.query_stats import paired_delta, per_query_ndcg, query_lists

MAX_GRID_POINTS = 1001  # the full grid of 5 members at step 0.1 (a fit of 4 on 1,000 queries: ~25 s)
ENSEMBLE, BEST_MEMBER = "ensemble", "best member"


@dataclasses.dataclass
class Selection:
    """What `select` chose on some queries."""

    weights: dict  # {"all" or locale: {member: weight}}, the ranker's weights
    normalization: dict  # {member: (mean, std)}
    chosen: dict  # {group: ENSEMBLE or BEST_MEMBER}
    ensemble_weights: dict  # {group: {member: weight}} of steps 3-4, before the fallback
    best: dict  # {group: best member}
    dropped: dict  # {group: {member: (stronger member, correlation)}}
    inner: dict  # {group: inner cross-validation means of the ensemble and the best member}

    @property
    def best_member_weights(self) -> dict:
        return {group: {member: 1.0} for group, member in self.best.items()}


@dataclasses.dataclass
class EnsembleFit:
    """What fit_ensemble chose and measured."""

    weights: dict  # {"all" or locale: {member: weight}}
    normalization: dict  # {member: (mean, std)}
    member_ndcg: dict  # {member: mean NDCG on the queries it scores}
    dropped: dict  # {group: {member: (stronger member, correlation)}}
    groups: dict  # {group: {"chosen", "best_member", "inner"}} of the final selection
    nested: dict  # the nested estimate: ensemble, best member, paired delta
    outer: list  # per outer part: its held-out query count and what select chose without it
    chosen: str  # "ensemble", "best member" or "ensemble (best member in: ...)"


def normalization(scores: np.ndarray) -> tuple:
    """(mean, std) of the scores a member has (NaN ignored; std 1 when constant)."""
    scores = np.asarray(scores, np.float64)
    scores = scores[~np.isnan(scores)]
    std = float(scores.std()) if len(scores) else 0.0
    return (float(scores.mean()) if len(scores) else 0.0), (std if std > 0 else 1.0)


def coverage(scores: dict, locales, row_names=None) -> dict:
    """{locale: [members scoring every pair of it]}; ValueError for a member scoring only some,
    naming a pair without a score (its `row_names` entry, e.g. the example_id; else its row)."""
    locales = np.asarray(locales).astype(str)
    result = {}
    for locale in sorted(np.unique(locales)):
        rows = locales == locale
        result[locale] = []
        for name, values in scores.items():
            missing = np.isnan(np.asarray(values, np.float64)[rows])
            if missing.all():
                continue
            if missing.any():
                first = int(np.flatnonzero(rows)[np.argmax(missing)])
                pair = f"row {first}" if row_names is None else str(np.asarray(row_names)[first])
                raise ValueError(f"member {name} has out-of-fold scores for {int((~missing).sum())} of the "
                                 f"{int(rows.sum())} {locale} pairs (none for {pair}, among others): it "
                                 f"would be weighted on pairs it has no out-of-fold score for")
            result[locale].append(name)
    return result


def covered_rows(scores: dict, locales) -> np.ndarray:
    """Boolean [N]: the rows every member scores, or has no score in the whole of the row's locale
    for (what `coverage` accepts)."""
    locales = np.asarray(locales).astype(str)
    keep = np.ones(len(locales), bool)
    for values in scores.values():
        scored = ~np.isnan(np.asarray(values, np.float64))
        for locale in np.unique(locales):
            rows = locales == locale
            if scored[rows].any():
                keep &= ~rows | scored
    return keep


def within_query_correlation(a, b, query_ids, lists=None) -> float:
    """Mean over queries (3+ rows, both varying) of the Pearson correlation of two score lists
    (`lists`: query_lists(query_ids), when the caller has them)."""
    _, rows, mask = query_lists(query_ids) if lists is None else lists
    x, y = np.asarray(a, np.float64)[rows], np.asarray(b, np.float64)[rows]
    count = mask.sum(axis=1)
    x_mean = np.where(mask, x, 0).sum(axis=1) / np.maximum(count, 1)
    y_mean = np.where(mask, y, 0).sum(axis=1) / np.maximum(count, 1)
    dx, dy = np.where(mask, x - x_mean[:, None], 0), np.where(mask, y - y_mean[:, None], 0)
    sxx, syy, sxy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1), (dx * dy).sum(axis=1)
    valid = (count >= 3) & (sxx > 1e-12 * np.maximum(1, (x * x * mask).sum(axis=1))) & \
        (syy > 1e-12 * np.maximum(1, (y * y * mask).sum(axis=1)))
    if valid.any():
        return float(np.mean(sxy[valid] / np.sqrt(sxx[valid] * syy[valid])))
    flat_a, flat_b = x[mask], y[mask]  # no query long enough: one correlation over all rows
    return float(np.corrcoef(flat_a, flat_b)[0, 1]) if flat_a.std() > 0 and flat_b.std() > 0 else 1.0


@functools.lru_cache(maxsize=16)
def simplex_grid(num_members: int, step: float) -> np.ndarray:
    """Every non-negative weight vector with entries in multiples of `step` summing to 1."""
    units = int(round(1.0 / step))
    points = [combo for combo in itertools.product(range(units + 1), repeat=num_members) if sum(combo) == units]
    return np.array(points, np.float64) / units


def grid_size(num_members: int, step: float) -> int:
    units = int(round(1.0 / step))
    return math.comb(units + num_members - 1, num_members - 1)


CELLS_PER_BLOCK = 1 << 17  # list cells (lists x positions x score vectors) sorted at once: ~1 MiB arrays stay in cache


def _sum_form(lengths: np.ndarray, width: int) -> np.ndarray:
    """How numpy sums the DCG of lists of `lengths` values padded with zeros to `width`: equal
    forms, equal sums. numpy sums a row of 8 to 128 values in 8 running sums over its longest
    multiple-of-8 prefix, then adds the rest one by one (padding adds exact zeros): a list inside
    that prefix is summed alike at any such width (form 0); a longer one alike at widths with
    the same prefix (form: the prefix). Shorter rows are summed one by one (form -1). A longer
    row numpy halves (the first half's length a multiple of 8) until the first part has 128 or
    fewer: a list inside that part's prefix is summed as in form 0, others only alike at this
    width (form: minus the width)."""
    if width < 8:
        return np.full(len(lengths), -1)
    if width > 128:
        first = width
        while first > 128:
            first = first // 2 - first // 2 % 8
        return np.where(lengths <= first, 0, -width)
    prefix = width // 8 * 8
    return np.where(lengths <= prefix, 0, prefix)


def _bucket_widths(lengths: np.ndarray, width: int) -> np.ndarray:
    """The padded width each list (of `lengths` rows) is sorted in: its length rounded up to a
    multiple of 8 (at least 8) where numpy sums it there as at the widest list's `width`
    (`_sum_form`), else `width`."""
    rounded = np.maximum(8, -(-lengths // 8) * 8)
    own_form = np.where(rounded <= 128, 0, -rounded)  # _sum_form(lengths, rounded), list by list
    return np.where(own_form == _sum_form(lengths, width), rounded, width)


def _stable_order(keys: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """`gains` [Q, W] in the order of `keys` [G, Q, W] ascending along W, ties by position (what
    np.argsort(kind="stable") gives), from the faster unstable argsort: only where two equal
    keys carry different gains does the order of ties matter, and only those lists are sorted
    again stably."""
    order = np.argsort(keys, axis=-1)
    offsets = (np.arange(gains.shape[0]) * gains.shape[1])[:, None]
    ordered = np.take(gains, order + offsets)
    sorted_keys = np.sort(keys, axis=-1)
    same = (sorted_keys[..., 1:] == sorted_keys[..., :-1]) | \
        (np.isnan(sorted_keys[..., 1:]) & np.isnan(sorted_keys[..., :-1]))
    redo = np.nonzero((same & (ordered[..., 1:] != ordered[..., :-1])).any(axis=-1))
    if len(redo[0]):
        stable = np.argsort(keys[redo], axis=-1, kind="stable")
        ordered[redo] = np.take_along_axis(gains[redo[1]], stable, axis=-1)
    return ordered


class _Lists:
    """Padded per-query lists of the rows of some queries, for fast NDCG of many score vectors
    (metrics.ndcg_per_list's conventions with one stable sort: ties by list order, padding last;
    queries without a positive gain left out). Lists are sorted in groups of similar length
    (`_bucket_widths`), not all padded to the longest, so the work grows with the rows, not with
    queries x the longest list; every number equals the one of a single padded array."""

    def __init__(self, gains, query_ids, width: int | None = None):
        """`width`: pad to this many positions (at least the longest list), as if a longer list
        were there."""
        uniques, rows, mask = query_lists(query_ids)
        if width is not None:
            rows, mask = (np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in (rows, mask))
        self.width = rows.shape[1]
        gains = np.where(mask, np.asarray(gains, np.float64)[rows], 0.0)
        self.counted = (gains > 0).any(axis=1)
        self.query_ids = uniques[self.counted]  # of the lists counted, in their order
        rows, mask, gains = rows[self.counted], mask[self.counted], gains[self.counted]
        self.lengths = mask.sum(axis=1)
        self.discount = metrics.discounts(rows.shape[1])
        self.ideal = (-np.sort(-gains, axis=1) * self.discount).sum(axis=1)
        self.num_lists = len(rows)
        widths = _bucket_widths(self.lengths, rows.shape[1])
        self.buckets = []  # (lists, rows, mask, gains) of the lists sorted at one width
        for width in np.unique(widths):
            lists = np.flatnonzero(widths == width)
            self.buckets.append((lists, rows[lists, :width], mask[lists, :width], gains[lists, :width]))

    def mean_ndcg(self, scores) -> float:
        return float(self.many(np.asarray(scores, np.float64)[:, None])[0])

    def many(self, score_columns: np.ndarray) -> np.ndarray:
        """Mean NDCG of each column of [N, G] scores."""
        columns = np.asarray(score_columns, np.float64)
        return self._means(columns.shape[1], lambda bucket, part, start, stop: np.ascontiguousarray(
            np.moveaxis(columns[:, start:stop][self.buckets[bucket][1][part]], 2, 0)))

    def weighted(self, matrix: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Mean NDCG of the scores matrix @ w of each row w of `weights` ([N, M] and [G, M])."""
        if not self.num_lists:
            return np.full(len(weights), np.nan)
        return self.per_query(matrix, weights).mean(axis=1)

    def per_query(self, matrix: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """[G, lists]: the NDCG of each counted list under the scores matrix @ w of each row w of
        `weights`, computed in the lists' layout a few grid points at a time (BLAS's products of
        another shape than one matrix @ weights.T: equal but for rounding in the last bit)."""
        matrix, weights = np.asarray(matrix, np.float64), np.asarray(weights, np.float64)
        members = [np.ascontiguousarray(np.moveaxis(matrix[rows], 2, 0)) for _, rows, _, _ in self.buckets]
        return self._per_query(len(weights), lambda bucket, part, start, stop: np.tensordot(
            weights[start:stop], members[bucket][:, part], axes=1))

    def _means(self, count: int, scores) -> np.ndarray:
        if not self.num_lists:
            return np.full(count, np.nan)
        return self._per_query(count, scores).mean(axis=1)

    def _per_query(self, count: int, scores) -> np.ndarray:
        """[count, lists] NDCG of `count` score vectors; scores(bucket, part, start, stop): the
        scores [stop - start, lists, W] of vectors start..stop-1 on the rows of that bucket's
        lists `part` (a slice), in blocks of about CELLS_PER_BLOCK cells."""
        values = np.empty((count, self.num_lists))
        for bucket, (lists, rows, mask, gains) in enumerate(self.buckets):
            width = rows.shape[1]
            per_part = max(1, CELLS_PER_BLOCK // width)
            for first in range(0, len(lists), per_part):
                part = slice(first, first + per_part)
                chunk = max(1, CELLS_PER_BLOCK // (len(lists[part]) * width))
                for start in range(0, count, chunk):
                    keys = np.negative(scores(bucket, part, start, min(start + chunk, count)))
                    np.copyto(keys, np.inf, where=~mask[part])  # padding last
                    dcg = (_stable_order(keys, gains[part]) * self.discount[:width]).sum(axis=2)
                    unscored = np.nonzero(np.isnan(keys).any(axis=-1))
                    if len(unscored[0]):  # NaN sorts after the padding: placed as in the widest lists
                        dcg[unscored] = self._wide_dcg(keys[unscored], gains[part][unscored[1]])
                    values[start:start + chunk, lists[part]] = dcg / self.ideal[lists[part]]
        return values

    def _wide_dcg(self, keys: np.ndarray, gains: np.ndarray) -> np.ndarray:
        """DCG of lists [F, W] padded to the widest list's width and sorted stably."""
        wide_keys = np.full((len(keys), len(self.discount)), np.inf)
        wide_gains = np.zeros(wide_keys.shape)
        wide_keys[:, :keys.shape[1]], wide_gains[:, :keys.shape[1]] = keys, gains
        order = np.argsort(wide_keys, axis=-1, kind="stable")
        return (np.take_along_axis(wide_gains, order, axis=-1) * self.discount).sum(axis=1)


def _ordered_grid(num_members: int, step: float) -> np.ndarray:
    """The simplex grid, points with fewer members first (then in grid order)."""
    grid = simplex_grid(num_members, step)
    return grid[np.lexsort((np.arange(len(grid)), (grid > 0).sum(axis=1)))]


def _best_point(names: list, points: np.ndarray, values: np.ndarray) -> tuple:
    """({name: weight}, mean NDCG) of the first point whose value is the best (within 1e-12)."""
    values = np.where(np.isnan(values), -np.inf, values)
    index = int(np.argmax(values > values.max() - 1e-12))  # the first of the best
    return {n: float(w) for n, w in zip(names, points[index]) if w > 0}, float(values[index])


def best_weights(standardized: dict, names: list, gains, query_ids, step: float) -> tuple:
    """({name: weight}, mean NDCG) of the best simplex-grid point on these rows (step 4)."""
    lists = _Lists(gains, query_ids)
    matrix = np.stack([standardized[n] for n in names], axis=1)
    if grid_size(len(names), step) > MAX_GRID_POINTS:
        return _local_search(lists, matrix, names, step)
    points = _ordered_grid(len(names), step)
    return _best_point(names, points, lists.weighted(matrix, points))


def _positions(ids: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Index in `among` (distinct) of each of `ids` (all in it)."""
    order = np.argsort(among, kind="stable")
    return order[np.searchsorted(among, ids, sorter=order)]


class _GroupGrid:
    """`best_weights` on one group's queries or some of them (whole queries, as the inner
    cross-validation takes them), with every grid point's per-query NDCG computed once per set of
    members on the whole group: a list's NDCG is its own, so the mean over some queries is the
    mean of theirs, taken in their order. A list numpy would sum in another order at the
    subset's padded width (`_sum_form`) is computed again at that width, so every number equals
    `best_weights` on the subset's rows."""

    def __init__(self, data: "_Data", step: float):
        self.data, self.step = data, step
        self.lists = _Lists(data.gains, data.query_ids)
        self.per_query = {}  # {members: [grid points, lists]}

    def best_weights(self, names: list, rows=None) -> tuple:
        data = self.data if rows is None else self.data.subset(rows)
        if grid_size(len(names), self.step) > MAX_GRID_POINTS:
            return best_weights(data.scores, names, data.gains, data.query_ids, self.step)
        points = _ordered_grid(len(names), self.step)
        if tuple(names) not in self.per_query:
            matrix = np.stack([self.data.scores[n] for n in names], axis=1)
            self.per_query[tuple(names)] = self.lists.per_query(matrix, points)
        whole = self.per_query[tuple(names)]
        subset = _Lists(data.gains, data.query_ids)
        if not subset.num_lists:
            return _best_point(names, points, np.full(len(points), np.nan))
        values = np.empty((len(points), subset.num_lists))
        same = _sum_form(subset.lengths, subset.width) == _sum_form(subset.lengths, self.lists.width)
        values[:, same] = whole[:, _positions(subset.query_ids[same], self.lists.query_ids)]
        if not same.all():
            rows = np.isin(data.query_ids, subset.query_ids[~same])
            again = _Lists(data.gains[rows], data.query_ids[rows], width=subset.width)
            matrix = np.stack([data.scores[n][rows] for n in names], axis=1)
            values[:, ~same] = again.per_query(matrix, points)[:, _positions(subset.query_ids[~same], again.query_ids)]
        return _best_point(names, points, values.mean(axis=1))


def _local_search(lists: _Lists, matrix: np.ndarray, names: list, step: float) -> tuple:
    units = int(round(1.0 / step))
    singles = lists.many(matrix)
    point = np.zeros(len(names), np.int64)
    point[int(np.nanargmax(singles))] = units
    value = float(np.nanmax(singles))
    moves = [(i, j) for i in range(len(names)) for j in range(len(names)) if i != j]
    while True:
        candidates = []
        for i, j in moves:
            if point[i] > 0:
                candidate = point.copy()
                candidate[i] -= 1
                candidate[j] += 1
                candidates.append(candidate)
        if not candidates:
            break
        candidates = np.array(candidates)
        values = lists.weighted(matrix, candidates / units)
        best = int(np.nanargmax(values))
        if not values[best] > value + 1e-12:
            break
        point, value = candidates[best], float(values[best])
    return {n: float(u) / units for n, u in zip(names, point) if u > 0}, value


def split_queries(query_ids, folds: int, seed: int) -> np.ndarray:
    """[N] part (0..folds-1) of each row: the queries dealt (seeded) into `folds` parts."""
    unique = np.unique(query_ids)
    part = np.empty(len(unique), np.int64)
    part[np.random.default_rng(seed).permutation(len(unique))] = np.arange(len(unique)) % folds
    return part[np.searchsorted(unique, query_ids)]


@dataclasses.dataclass
class _Data:
    """Some queries' standardised member scores, labels and locales."""

    scores: dict
    gains: np.ndarray
    query_ids: np.ndarray
    locales: np.ndarray

    def subset(self, rows) -> "_Data":
        return _Data({n: s[rows] for n, s in self.scores.items()}, self.gains[rows], self.query_ids[rows],
                     self.locales[rows])


def _groups(data: _Data, covering: dict, per_locale: bool, min_locale_queries: int, everywhere=None) -> dict:
    """{group: (rows, members covering it)}: "all" first (`everywhere`: the members covering every
    locale of all the data, not only of these rows), then the locales with their own weights."""
    everywhere = [n for n in data.scores if all(n in members for members in covering.values())
                  and (everywhere is None or n in everywhere)]
    if not everywhere:
        raise ValueError(f"no member covers every locale ({', '.join(covering)}): add one that does, "
                         "e.g. bm25, for the locales without weights of their own")
    groups = {ALL_LOCALES: (np.ones(len(data.gains), bool), everywhere)}
    if per_locale:
        for locale, members in covering.items():
            rows = data.locales == locale
            if members and len(np.unique(data.query_ids[rows])) >= min_locale_queries:
                groups[locale] = (rows, members)
    return groups


def _strengths(data: _Data, names: list) -> dict:
    lists = _Lists(data.gains, data.query_ids)
    values = lists.many(np.stack([data.scores[n] for n in names], axis=1))
    return {n: float(v) for n, v in zip(names, values)}


def _fit_group(data: _Data, members: list, correlation_limit: float, step: float, search=None) -> tuple:
    """Steps 3-4 on one group's rows: ({member: weight}, best member, {dropped: (stronger, r)});
    search(kept members): step 4 (by default best_weights on these rows)."""
    strength = _strengths(data, members)
    ranked = sorted(members, key=lambda n: (-np.nan_to_num(strength[n], nan=-1.0), members.index(n)))
    kept, dropped = [], {}
    lists = query_lists(data.query_ids) if len(members) > 1 else None  # shared by every pair's correlation
    for name in ranked:
        for stronger in kept:
            correlation = within_query_correlation(data.scores[name], data.scores[stronger], data.query_ids, lists)
            if correlation >= correlation_limit:
                dropped[name] = (stronger, correlation)
                break
        else:
            kept.append(name)
    if search is None:
        weights, _ = best_weights(data.scores, kept, data.gains, data.query_ids, step)
    else:
        weights, _ = search(kept)
    return weights, ranked[0], dropped


def apply_weights(weights: dict, scores: dict, locales) -> np.ndarray:
    """The ensemble's score of each row from standardised member scores (as EnsembleRanker.combine:
    a locale's own weights, else the "all" weights)."""
    locales = np.asarray(locales).astype(str)
    result = np.zeros(len(locales), np.float64)
    for locale in np.unique(locales):
        rows = locales == locale
        for name, weight in weights.get(locale, weights[ALL_LOCALES]).items():
            result[rows] += weight * scores[name][rows]
    return result


def _ndcg_of(weights: dict, data: _Data) -> dict:
    return per_query_ndcg(data.gains, apply_weights(weights, data.scores, data.locales), data.query_ids)


def select(scores: dict, gains, query_ids, locales, folds: int = 5, correlation_limit: float = 0.98,
           weight_step: float = 0.1, per_locale: bool = False, seed: int = 0,
           min_locale_queries: int = MIN_LOCALE_QUERIES, everywhere=None) -> Selection:
    """Steps 1-5 of the module's rule on these rows only (`everywhere`: the members that may have
    "all" weights, by default those covering every locale of these rows)."""
    norms = {name: normalization(s) for name, s in scores.items()}
    data = _Data({name: (np.asarray(s, np.float64) - norms[name][0]) / norms[name][1] for name, s in scores.items()},
                 np.asarray(gains, np.float64), np.asarray(query_ids), np.asarray(locales).astype(str))
    covering = coverage(data.scores, data.locales)
    groups = _groups(data, covering, per_locale, min_locale_queries, everywhere)
    parts = split_queries(data.query_ids, folds, seed + 1)
    weights, chosen, fitted, best, dropped, inner = {}, {}, {}, {}, {}, {}
    for group, (rows, members) in groups.items():
        group_data = data.subset(rows)
        grid = _GroupGrid(group_data, weight_step)  # step 4's NDCGs, shared by the inner fits
        fitted[group], best[group], dropped[group] = _fit_group(group_data, members, correlation_limit, weight_step,
                                                                grid.best_weights)
        held_out = {ENSEMBLE: {}, BEST_MEMBER: {}}
        for part in range(folds):
            inside = parts[rows] != part
            if inside.all() or not inside.any():
                continue
            train, test = group_data.subset(inside), group_data.subset(~inside)
            part_weights, part_best, _ = _fit_group(train, members, correlation_limit, weight_step,
                                                    lambda kept: grid.best_weights(kept, inside))
            held_out[ENSEMBLE].update(_ndcg_of({ALL_LOCALES: part_weights}, test))
            held_out[BEST_MEMBER].update(_ndcg_of({ALL_LOCALES: {part_best: 1.0}}, test))
        means = {k: float(np.mean(list(v.values()))) if v else float("nan") for k, v in held_out.items()}
        inner[group] = {**means, "num_queries": len(held_out[ENSEMBLE])}
        chosen[group] = BEST_MEMBER if means[ENSEMBLE] < means[BEST_MEMBER] else ENSEMBLE
        weights[group] = fitted[group] if chosen[group] == ENSEMBLE else {best[group]: 1.0}
    return Selection(weights, norms, chosen, fitted, best, dropped, inner)


def _standardized(scores: dict, norms: dict, rows) -> dict:
    return {n: (np.asarray(s, np.float64)[rows] - norms[n][0]) / norms[n][1] for n, s in scores.items()}


def _summary(chosen: dict) -> str:
    fallback = [g for g, c in chosen.items() if c == BEST_MEMBER]
    if not fallback:
        return ENSEMBLE
    return BEST_MEMBER if len(fallback) == len(chosen) else f"{ENSEMBLE} ({BEST_MEMBER} in: {', '.join(fallback)})"


def fit_ensemble(scores: dict, gains, query_ids, locales, folds: int = 5, correlation_limit: float = 0.98,
                 weight_step: float = 0.1, per_locale: bool = False, seed: int = 0, bootstrap_samples: int = 1000,
                 min_locale_queries: int = MIN_LOCALE_QUERIES) -> EnsembleFit:
    """The final weights of members' out-of-fold `scores` ({name: [N], NaN where none}) and the
    nested estimate, by the module's rule."""
    gains, query_ids = np.asarray(gains, np.float64), np.asarray(query_ids)
    locales = np.asarray(locales).astype(str)
    scores = {name: np.asarray(s, np.float64) for name, s in scores.items()}
    covering = coverage(scores, locales)  # refuses partial members before any work
    everywhere = [n for n in scores if all(n in members for members in covering.values())]
    settings = dict(folds=folds, correlation_limit=correlation_limit, weight_step=weight_step,
                    per_locale=per_locale, seed=seed, min_locale_queries=min_locale_queries, everywhere=everywhere)
    parts = split_queries(query_ids, folds, seed)
    on_held_out = {ENSEMBLE: {}, BEST_MEMBER: {}}
    outer = []
    for part in range(folds):
        inside = parts != part
        if inside.all() or not inside.any():
            continue
        chosen = select({n: s[inside] for n, s in scores.items()}, gains[inside], query_ids[inside], locales[inside],
                        **settings)
        held_out = _Data(_standardized(scores, chosen.normalization, ~inside), gains[~inside], query_ids[~inside],
                         locales[~inside])
        on_held_out[ENSEMBLE].update(_ndcg_of(chosen.weights, held_out))
        on_held_out[BEST_MEMBER].update(_ndcg_of(chosen.best_member_weights, held_out))
        outer.append({"part": part, "held_out_queries": int(len(np.unique(query_ids[~inside]))),
                      "weights": chosen.weights, "chosen": chosen.chosen})
    nested = {"folds": folds, "num_queries": len(on_held_out[ENSEMBLE]),
              "ensemble_ndcg": float(np.mean(list(on_held_out[ENSEMBLE].values()))),
              "best_member_ndcg": float(np.mean(list(on_held_out[BEST_MEMBER].values()))),
              "ensemble_minus_best": paired_delta(on_held_out[ENSEMBLE], on_held_out[BEST_MEMBER],
                                                  num_samples=bootstrap_samples),
              # each query's held-out NDCG (JSON keys: query ids as text), for paired comparisons elsewhere
              "per_query": {name: {str(q): float(v) for q, v in values.items()} for name, values in on_held_out.items()}}
    final = select(scores, gains, query_ids, locales, **settings)
    member_ndcg = {}
    for name, values in scores.items():
        rows = ~np.isnan(values)
        member_ndcg[name] = _Lists(gains[rows], query_ids[rows]).mean_ndcg(values[rows]) if rows.any() else math.nan
    groups = {g: {"chosen": final.chosen[g], "best_member": final.best[g], "ensemble_weights": final.ensemble_weights[g],
                  "inner": final.inner[g]} for g in final.weights}
    return EnsembleFit(final.weights, final.normalization, member_ndcg, final.dropped, groups, nested, outer,
                       _summary(final.chosen))


OUTPUT_KEYS = ("weights", "normalization", "member_ndcg", "dropped", "groups", "nested", "outer", "chosen")


def outputs(fitted: EnsembleFit) -> dict:
    """The fit as JSON values (what the recipe's ensemble stage and the ensemble report record)."""
    return json.loads(json.dumps({k: getattr(fitted, k) for k in OUTPUT_KEYS}))
