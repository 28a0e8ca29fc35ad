"""The synthetic ESCI generator: schema, determinism, label mix, languages, learnable labels."""

import re
import zlib

import numpy as np
import pandas as pd
import pytest

from esci_tf.data.synthetic import EXAMPLE_COLUMNS, PRODUCT_COLUMNS, generate_esci
from esci_tf.labels import NUM_CLASSES, label_index


@pytest.fixture(scope="module")
def data():
    return generate_esci(num_queries=300, seed=0)


def test_official_schema(data):
    examples, products = data
    assert list(examples.columns) == EXAMPLE_COLUMNS
    assert list(products.columns) == PRODUCT_COLUMNS
    for column in ("example_id", "query_id", "small_version", "large_version"):
        assert examples[column].dtype == np.int64, column
    assert examples["example_id"].is_unique
    assert set(examples["esci_label"]) == {"E", "S", "C", "I"}
    assert set(examples["split"]) == {"train", "test"}
    assert set(examples["product_locale"]) == {"us", "es", "jp"}
    assert not products.duplicated(["product_id", "product_locale"]).any()
    assert not examples.duplicated(["query_id", "product_id"]).any()
    merged = examples.merge(products, on=["product_id", "product_locale"], how="left", validate="many_to_one")
    assert merged["product_title"].notna().all()
    assert examples["query_id"].nunique() == 300
    # One locale and one split per query.
    per_query = examples.groupby("query_id")[["product_locale", "split", "query"]].nunique()
    assert (per_query == 1).all().all()
    assert products["product_description"].isna().any()  # like the real data, fields may be missing


def test_deterministic_for_a_seed():
    first, second, other = generate_esci(40, seed=7), generate_esci(40, seed=7), generate_esci(40, seed=8)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert not first[0]["query"].equals(other[0]["query"])
    with pytest.raises(ValueError, match="num_queries"):
        generate_esci(0)


def test_label_mix_split_and_list_sizes(data):
    examples, _ = data
    shares = examples["esci_label"].value_counts(normalize=True)
    assert 0.38 < shares["E"] < 0.52
    assert 0.18 < shares["S"] < 0.32
    assert 0.04 < shares["C"] < 0.12
    assert 0.15 < shares["I"] < 0.29
    test_queries = examples.groupby("query_id")["split"].first().eq("test").mean()
    assert 0.12 < test_queries < 0.28
    sizes = examples.groupby("query_id").size()
    assert sizes.min() >= 5 and sizes.max() <= 20 and sizes.mean() > 10
    mixed = examples.groupby("query_id")["esci_label"].nunique()
    assert (mixed >= 2).mean() > 0.95


def test_text_is_in_each_language_with_some_html(data):
    examples, products = data
    spanish = products.loc[products.product_locale == "es", "product_title"].str.cat(sep=" ")
    japanese = products.loc[products.product_locale == "jp", "product_title"].str.cat(sep=" ")
    assert re.search(r"\b(para|color|de)\b", spanish) and re.search("[áéíóúñ]", spanish)
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", japanese)
    assert products["product_description"].dropna().str.contains(r"<(?:p|br|b)\b").any()
    assert products["product_description"].dropna().str.contains("&amp;").any()


def _features(query: str, title: str, dim: int) -> np.ndarray:
    """Hashed bag of words: title words, words shared with the query, query words missing."""
    query_words, title_words = set(query.lower().split()), set(re.findall(r"[^\s,]+", title.lower()))
    keys = [f"t:{w}" for w in title_words] + [f"both:{w}" for w in query_words & title_words]
    keys += [f"missing:{w}" for w in query_words - title_words] + ["bias"]
    x = np.zeros(dim, np.float32)
    for key in keys:
        x[zlib.crc32(key.encode()) % dim] = 1.0
    return x


def test_labels_are_learnable_by_a_bag_of_words_baseline(data):
    examples, products = data
    merged = examples.merge(products, on=["product_id", "product_locale"])
    dim = 1024
    x = np.stack([_features(q, t, dim) for q, t in zip(merged["query"], merged["product_title"])])
    y = np.array([label_index(label) for label in merged["esci_label"]])
    train, test = (merged["split"] == "train").to_numpy(), (merged["split"] == "test").to_numpy()
    weights = np.zeros((dim, NUM_CLASSES), np.float32)
    targets = np.eye(NUM_CLASSES, dtype=np.float32)[y[train]]
    for _ in range(150):  # softmax regression, full-batch gradient descent
        logits = x[train] @ weights
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        weights -= 0.5 * x[train].T @ (probs - targets) / train.sum()
    accuracy = float(np.mean((x[test] @ weights).argmax(1) == y[test]))
    majority = float(np.mean(y[test] == np.bincount(y[train]).argmax()))
    print(f"bag-of-words accuracy {accuracy:.3f}, majority class {majority:.3f}")
    assert accuracy > majority + 0.25, (accuracy, majority)
