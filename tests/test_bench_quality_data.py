"""bench/quality_data: the long-list folds evaluate each long query once, grouped by query."""

import numpy as np
import pandas as pd
import pytest

from bench.quality_data import fold_rows, long_list_folds


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
