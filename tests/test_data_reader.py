"""esci_tf.data.reader / validation: reading, validation errors, skip mode, task/split selection."""

import json

import numpy as np
import pandas as pd
import pytest

from esci_tf.errors import DataError
from esci_tf.data.reader import load_esci, read_table


def examples_frame():
    """Six examples in the official schema: three queries, us/es/jp, both splits and versions."""
    return pd.DataFrame(
        {
            "example_id": [10, 11, 12, 13, 14, 15],
            "query": ["red shoes", "red shoes", "zapatos rojos", "赤い靴", "lamp", "lamp"],
            "query_id": [1, 1, 2, 3, 4, 4],
            "product_id": ["P1", "P2", "P1", "J1", "0425284700", "P2"],
            "product_locale": ["us", "us", "es", "jp", "us", "us"],
            "esci_label": ["E", "S", "C", "I", "E", "I"],
            "small_version": [1, 1, 1, 0, 1, 0],
            "large_version": [1, 1, 1, 1, 1, 1],
            "split": ["train", "train", "test", "train", "test", "test"],
        }
    )


def products_frame():
    return pd.DataFrame(
        {
            "product_id": ["P1", "P2", "P1", "J1", "0425284700"],
            "product_title": ["Red Shoe", "Blue Shoe", "Zapato rojo", "赤い靴", "Desk lamp"],
            "product_description": ["<p>Nice</p>", None, "", "良い靴です", "bright"],
            "product_bullet_point": ["", "", "", "", ""],
            "product_brand": ["Nike", "Adidas", "Nike", "", "Lampco"],
            "product_color": ["red", "blue", "rojo", "赤", ""],
            "product_locale": ["us", "us", "es", "jp", "us"],
        }
    )


def write(tmp_path, examples=None, products=None, fmt="parquet"):
    examples = examples_frame() if examples is None else examples
    products = products_frame() if products is None else products
    e, p = tmp_path / f"examples.{fmt}", tmp_path / f"products.{fmt}"
    if fmt == "parquet":
        examples.to_parquet(e, index=False)
        products.to_parquet(p, index=False)
    else:
        examples.to_csv(e, index=False)
        products.to_csv(p, index=False)
    return str(e), str(p)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_reads_and_merges_parquet_and_csv(tmp_path, fmt):
    e, p = write(tmp_path, fmt=fmt)
    df, report = load_esci(e, p, task="all")
    assert len(df) == 6 and report.total == 0
    assert df["example_id"].tolist() == [10, 11, 12, 13, 14, 15]
    assert df["label"].tolist() == [0, 1, 2, 3, 0, 3]
    assert df["label"].dtype == np.int64 and df["query_id"].dtype == np.int64
    # Merged on (product_id, product_locale): P1/us and P1/es are different products.
    assert df["product_title"].tolist()[:3] == ["Red Shoe", "Blue Shoe", "Zapato rojo"]
    # CSV keeps the ISBN's leading zero; missing text becomes "".
    assert df.loc[4, "product_id"] == "0425284700" and df.loc[4, "product_title"] == "Desk lamp"
    assert df.loc[1, "product_description"] == ""
    assert df["example_id"].is_unique


def test_task_and_split_selection(tmp_path):
    e, p = write(tmp_path)
    ids = lambda **kw: load_esci(e, p, **kw)[0]["example_id"].tolist()  # noqa: E731
    assert ids(task="1") == [10, 11, 12, 14]
    assert ids(task="2") == ids(task="3") == [10, 11, 12, 13, 14, 15]
    assert ids(task="all") == [10, 11, 12, 13, 14, 15]
    assert ids(task="1", split="train") == [10, 11]
    assert ids(task="all", split="test") == [12, 14, 15]
    with pytest.raises(ValueError, match="task"):
        load_esci(e, p, task="4")
    with pytest.raises(ValueError, match="split"):
        load_esci(e, p, split="dev")


def test_sources_merge_on_query_id(tmp_path):
    e, p = write(tmp_path)
    s = tmp_path / "sources.csv"
    pd.DataFrame({"query_id": [1, 2, 3, 4], "source": ["negations", "other", "other", "parse_pattern"]}).to_csv(
        s, index=False
    )
    df, _ = load_esci(e, p, s, task="all")
    assert df["source"].tolist() == ["negations", "negations", "other", "other", "parse_pattern", "parse_pattern"]


def test_duplicate_query_id_in_sources_names_file_and_rows(tmp_path):
    e, p = write(tmp_path)
    s = tmp_path / "sources.csv"
    pd.DataFrame({"query_id": [1, 2, 2], "source": ["a", "b", "c"]}).to_csv(s, index=False)
    with pytest.raises(DataError, match=r"sources\.csv, row 1: duplicate query_id 2 at rows 1, 2"):
        load_esci(e, p, s)


def test_missing_column_names_file(tmp_path):
    e, p = write(tmp_path, examples=examples_frame().drop(columns=["esci_label"]))
    with pytest.raises(DataError, match=r"examples\.parquet: missing column\(s\) esci_label"):
        load_esci(e, p)
    e, p = write(tmp_path, products=products_frame().drop(columns=["product_color", "product_brand"]))
    with pytest.raises(DataError, match=r"products\.parquet: missing column\(s\) product_brand, product_color"):
        load_esci(e, p)


def test_query_id_not_integer_names_row_and_value(tmp_path):
    examples = examples_frame().astype({"query_id": object})
    examples.loc[3, "query_id"] = "q3"
    e, p = write(tmp_path, examples=examples, fmt="csv")
    with pytest.raises(DataError) as err:
        load_esci(e, p)
    message = str(err.value)
    assert "examples.csv, row 3:" in message and "query_id must hold integers" in message and "'q3'" in message
    assert err.value.row == 3 and err.value.path.endswith("examples.csv")


def test_fractional_and_missing_ids_are_rejected(tmp_path):
    examples = examples_frame().astype({"example_id": float})
    examples.loc[2, "example_id"] = 12.5
    examples.loc[4, "example_id"] = np.nan
    e, p = write(tmp_path, examples=examples)
    expected = r"examples\.parquet, row 2: column example_id .*row 2 \(example_id=12\.5\), row 4"
    with pytest.raises(DataError, match=expected):
        load_esci(e, p)


def test_product_id_must_be_string(tmp_path):
    products = products_frame()
    products["product_id"] = [1, 2, 3, 4, 5]
    e, p = write(tmp_path, products=products)
    with pytest.raises(DataError, match=r"products\.parquet, row 0: column product_id must hold strings"):
        load_esci(e, p)


def test_duplicate_example_id_names_both_rows(tmp_path):
    examples = examples_frame()
    examples.loc[4, "example_id"] = 11
    e, p = write(tmp_path, examples=examples)
    with pytest.raises(DataError, match=r"examples\.parquet, row 1: duplicate example_id 11 at rows 1, 4"):
        load_esci(e, p, on_bad_rows="skip")  # file-level: never skipped


def test_duplicate_product_names_rows(tmp_path):
    products = pd.concat([products_frame(), products_frame().iloc[[2]]], ignore_index=True)
    e, p = write(tmp_path, products=products)
    expected = r"products\.parquet, row 2: duplicate \(product_id, product_locale\) \('P1', 'es'\) at rows 2, 5"
    with pytest.raises(DataError, match=expected):
        load_esci(e, p)


def test_bad_split_and_version_values(tmp_path):
    examples = examples_frame()
    examples.loc[5, "split"] = "dev"
    e, p = write(tmp_path, examples=examples)
    with pytest.raises(DataError, match=r"examples\.parquet, row 5: column split .*'dev'"):
        load_esci(e, p)
    examples = examples_frame()
    examples.loc[0, "small_version"] = 2
    e, p = write(tmp_path, examples=examples)
    with pytest.raises(DataError, match=r"examples\.parquet, row 0: column small_version"):
        load_esci(e, p)


@pytest.mark.parametrize(
    "column, row, value, reason",
    [
        ("query", 2, "   ", "empty_query"),
        ("query", 4, None, "empty_query"),
        ("esci_label", 1, "Maybe", "unknown_label"),
        ("product_locale", 3, "fr", "unknown_locale"),
        ("product_id", 5, "NOPE", "missing_product"),
    ],
)
def test_row_level_problems_raise_with_row_then_skip_and_count(tmp_path, column, row, value, reason):
    examples = examples_frame().astype({column: object})
    examples.loc[row, column] = value
    e, p = write(tmp_path, examples=examples)
    with pytest.raises(DataError) as err:
        load_esci(e, p, task="all")
    assert f"examples.parquet, row {row}:" in str(err.value) and reason in str(err.value)
    assert err.value.row == row

    df, report = load_esci(e, p, task="all", on_bad_rows="skip")
    dropped_id = int(examples_frame().loc[row, "example_id"])
    assert report.counts == {reason: 1} and report.ids[reason] == [dropped_id]
    assert dropped_id not in df["example_id"].tolist() and len(df) == 5
    assert json.loads(json.dumps(report.to_dict()))["counts"] == {reason: 1}


def test_skip_mode_counts_several_reasons_and_only_selected_rows(tmp_path):
    examples = examples_frame()
    examples.loc[0, "query"] = ""
    examples.loc[1, "esci_label"] = "?"
    examples.loc[3, "product_locale"] = "de"  # task 2 only: not selected by task 1
    examples.loc[5, "product_id"] = "GONE"  # task 2 only
    e, p = write(tmp_path, examples=examples)
    df, report = load_esci(e, p, task="1", on_bad_rows="skip")
    assert report.counts == {"empty_query": 1, "unknown_label": 1}
    assert df["example_id"].tolist() == [12, 14]
    df, report = load_esci(e, p, task="all", on_bad_rows="skip")
    assert report.counts == {"empty_query": 1, "unknown_label": 1, "unknown_locale": 1, "missing_product": 1}
    assert report.total == 4 and "dropped 4 rows" in str(report)
    assert sorted(df["example_id"]) == [12, 14]


def test_unknown_product_locale_raises_or_drops_the_product(tmp_path):
    products = products_frame()
    products.loc[3, "product_locale"] = "xx"
    e, p = write(tmp_path, products=products)
    with pytest.raises(DataError, match=r"products\.parquet, row 3: .*product_unknown_locale"):
        load_esci(e, p, task="all")
    df, report = load_esci(e, p, task="all", on_bad_rows="skip")
    assert report.counts == {"product_unknown_locale": 1, "missing_product": 1}
    assert report.ids["missing_product"] == [13] and 13 not in df["example_id"].tolist()


def test_unlabelled_examples_when_labels_not_required(tmp_path):
    e, p = write(tmp_path, examples=examples_frame().drop(columns=["esci_label"]))
    df, _ = load_esci(e, p, task="all", require_labels=False)
    assert (df["label"] == -1).all() and len(df) == 6


def test_unreadable_inputs_name_the_file(tmp_path):
    e, p = write(tmp_path)
    with pytest.raises(DataError, match=r"nothere\.parquet: file not found"):
        load_esci(str(tmp_path / "nothere.parquet"), p)
    (tmp_path / "examples.json").write_text("{}")
    with pytest.raises(DataError, match=r"examples\.json: unknown file type"):
        read_table(tmp_path / "examples.json")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"broken\.parquet: cannot read parquet"):
        read_table(tmp_path / "broken.parquet")
    with pytest.raises(ValueError, match="on_bad_rows"):
        load_esci(e, p, on_bad_rows="ignore")


def test_real_sample(esci_sample_dir):
    df, report = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet", task="1")
    assert report.total == 0
    assert len(df) == 5666 and df["query_id"].nunique() == 588 and df["example_id"].is_unique
    assert np.bincount(df["label"], minlength=4).tolist() == [2559, 1627, 252, 1228]
    assert (df["product_locale"] == "us").all() and (df["product_title"] != "").all()
    train, _ = load_esci(esci_sample_dir / "examples.parquet", esci_sample_dir / "products.parquet", split="train")
    assert len(train) == 4437


def test_reads_fsspec_urls_like_gcs(tmp_path):
    """Remote paths go through fsspec (gs:// with gcsfs); memory:// stands in for GCS here."""
    examples_frame().to_parquet("memory://esci_test/examples.parquet", index=False)
    products_frame().to_csv("memory://esci_test/products.csv", index=False)
    df, _ = load_esci("memory://esci_test/examples.parquet", "memory://esci_test/products.csv", task="all")
    assert len(df) == 6 and df.loc[4, "product_id"] == "0425284700"
    with pytest.raises(DataError, match=r"memory://esci_test/missing\.parquet: file not found"):
        load_esci("memory://esci_test/missing.parquet", "memory://esci_test/products.csv")
