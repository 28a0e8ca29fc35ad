"""esci_tf.data.splits: query-grouped folds and train/eval leakage."""

import numpy as np
import pandas as pd
import pytest

from esci_tf.errors import DataError
from esci_tf.data.reader import load_esci
from esci_tf.data.splits import assign_folds, check_no_leakage, remove_leaked_queries


def frame(num_queries=40, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 30, size=num_queries)
    query_id = np.repeat(np.arange(num_queries) * 7 + 3, sizes)
    locale = np.repeat(np.array(["us", "es", "jp"])[np.arange(num_queries) % 3], sizes)
    return pd.DataFrame({"query_id": query_id, "query": [f"query {q}" for q in query_id], "product_locale": locale})


def test_folds_group_queries_and_balance_rows():
    df = frame()
    folds = assign_folds(df, 4, seed=1)
    assert folds.dtype == np.int32 and folds.shape == (len(df),) and set(folds) == {0, 1, 2, 3}
    assert (df.assign(fold=folds).groupby("query_id")["fold"].nunique() == 1).all()
    rows = np.bincount(folds)
    assert rows.max() - rows.min() <= df.groupby("query_id").size().max()
    for _, part in df.assign(fold=folds).groupby("product_locale"):
        per_fold = np.bincount(part["fold"], minlength=4)
        assert per_fold.min() > 0


def test_folds_are_deterministic_and_depend_on_seed():
    df = frame()
    assert np.array_equal(assign_folds(df, 5, 3), assign_folds(df, 5, 3))
    assert np.array_equal(assign_folds(df.sample(frac=1, random_state=0), 5, 3),
                          assign_folds(df, 5, 3)[df.sample(frac=1, random_state=0).index])
    assert not np.array_equal(assign_folds(df, 5, 3), assign_folds(df, 5, 4))


def test_fold_argument_errors():
    with pytest.raises(ValueError, match="num_folds"):
        assign_folds(frame(), 0, 0)
    with pytest.raises(ValueError, match="more than the 2 distinct"):
        assign_folds(frame(2), 3, 0)
    with pytest.raises(DataError, match="query_id"):
        assign_folds(pd.DataFrame({"q": [1]}), 2, 0)


def test_leakage_by_id_and_by_normalised_text():
    train = pd.DataFrame({"query_id": [1, 1, 2, 3, 4], "query": ["a", "a", "Red  SHOES", "lamp", "desk"]})
    eval_ = pd.DataFrame({"query_id": [1, 9], "query": ["a", " red shoes "]})
    with pytest.raises(DataError) as err:
        check_no_leakage(train, eval_)
    assert "2 training queries (3 rows)" in str(err.value) and "1 'a'" in str(err.value)
    assert "2 'Red  SHOES'" in str(err.value)
    cleaned, removed = remove_leaked_queries(train, eval_)
    assert removed == 3 and cleaned["query_id"].tolist() == [3, 4]
    check_no_leakage(cleaned, eval_)


def test_real_sample_has_no_test_query_in_training_after_removal(esci_sample_dir):
    df, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet")
    train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    cleaned, removed = remove_leaked_queries(train, test)
    assert removed > 0 and len(cleaned) == len(train) - removed
    check_no_leakage(cleaned, test)
    assert not set(cleaned["query_id"]) & set(test["query_id"])
    assert not set(cleaned["query"].str.casefold().str.strip()) & set(test["query"].str.casefold().str.strip())
    folds = assign_folds(cleaned, 5, 0)
    assert (cleaned.assign(fold=folds).groupby("query_id")["fold"].nunique() == 1).all()
