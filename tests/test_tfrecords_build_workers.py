"""The streaming, parallel tfrecords.build writes the same bytes as the in-memory single-process
build it replaced (tests/legacy_tfrecords_builder.py), for any --workers."""

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from esci_tf.data import product_store
from esci_tf.data.synthetic import generate_esci
from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
from tests.legacy_tfrecords_builder import legacy_build
from tfrecords import build

MAX_LENGTH = 32
SETTINGS = dict(task="all", num_folds=3, num_shards=3, on_bad_rows="skip", label_smoothing=0.1, seed=3)


@pytest.fixture(scope="module")
def preprocessor():
    return PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", MAX_LENGTH)


@pytest.fixture(scope="module")
def files_with_bad_rows(tmp_path_factory):
    """Generated examples and products with rows every skip reason drops, in several parquet
    row groups, a product no example names, and product text with HTML, emoji and missing fields."""
    directory = tmp_path_factory.mktemp("data")
    examples, products = generate_esci(num_queries=24, seed=5)
    examples = examples.sample(frac=1.0, random_state=0).reset_index(drop=True)  # queries interleaved
    examples.loc[1, "esci_label"] = "X"  # unknown_label
    examples.loc[2, "product_id"] = "NO_SUCH_PRODUCT"  # missing_product
    duplicate = examples.iloc[[5]].assign(example_id=examples["example_id"].max() + 1)  # duplicate_pair
    conflict = examples.iloc[[6]].assign(example_id=examples["example_id"].max() + 2,  # conflicting_labels
                                         esci_label=lambda f: np.where(f["esci_label"] == "E", "I", "E"))
    examples = pd.concat([examples, duplicate, conflict], ignore_index=True)
    products.loc[0, "product_description"] = "<p>Deep <b>bass</b> &amp; 🎧</p>"
    products.loc[1, "product_brand"] = None
    products = pd.concat([products, products.iloc[[0]].assign(product_id="UNJUDGED")], ignore_index=True)
    paths = str(directory / "examples.parquet"), str(directory / "products.parquet")
    pq.write_table(pa.Table.from_pandas(examples, preserve_index=False), paths[0], row_group_size=97)
    pq.write_table(pa.Table.from_pandas(products, preserve_index=False), paths[1], row_group_size=61)
    return paths


def _output(directory) -> dict:
    """{file name: bytes} of a build, summary.json with its shard paths made relative."""
    contents = {}
    for name in sorted(os.listdir(directory)):
        data = (directory / name).read_bytes()
        if name == "summary.json":
            summary = json.loads(data)
            for split in summary["splits"].values():
                for shard in split["files"]:
                    shard["path"] = os.path.relpath(shard["path"], directory)
            data = summary
        contents[name] = data
    return contents


def test_any_workers_write_the_legacy_bytes(tmp_path, monkeypatch, files_with_bad_rows, preprocessor):
    monkeypatch.setattr(product_store, "PIECE_ROWS", 50)  # the products file in several pieces
    legacy_dir = tmp_path / "legacy"
    legacy = legacy_build(*files_with_bad_rows, str(legacy_dir), preprocessor, "xlm_roberta", **SETTINGS)
    assert set(legacy["dropped"]["counts"]) == {"unknown_label", "missing_product", "duplicate_pair",
                                                 "conflicting_labels"}
    expected = _output(legacy_dir)
    assert sum(name.endswith(".tfrecord.gz") for name in expected) == 6
    for workers in (2,):  # --workers=1 (in this process): test_entity_markers_stream_the_same_bytes
        output_dir = tmp_path / f"workers{workers}"
        (output_dir).mkdir()
        (output_dir / "train-00000-of-00009.tfrecord.gz").write_bytes(b"stale")  # removed by the build
        build.build_tfrecords(*files_with_bad_rows, str(output_dir), max_length=MAX_LENGTH, show_progress=False,
                              preprocessor=preprocessor, workers=workers, **SETTINGS)
        got = _output(output_dir)
        assert list(got) == list(expected), workers  # no product store or temporary left behind
        for name, content in expected.items():
            assert got[name] == content, f"{name} differs with --workers={workers}"


def test_entity_markers_stream_the_same_bytes(tmp_path, files_with_bad_rows, preprocessor):
    settings = dict(SETTINGS, num_shards=2, entity_markers=True, field_style="tokens")
    legacy_build(*files_with_bad_rows, str(tmp_path / "legacy"), preprocessor, "xlm_roberta", **settings)
    build.build_tfrecords(*files_with_bad_rows, str(tmp_path / "stream"), max_length=MAX_LENGTH,
                          show_progress=False, preprocessor=preprocessor, workers=1, **settings)
    assert _output(tmp_path / "stream") == _output(tmp_path / "legacy")


def test_product_file_errors_name_the_row(tmp_path, files_with_bad_rows, preprocessor, monkeypatch):
    monkeypatch.setattr(product_store, "PIECE_ROWS", 50)  # the bad rows are in the second piece
    products = pd.read_parquet(files_with_bad_rows[1])
    path = tmp_path / "products.csv"
    products.assign(product_id=lambda f: f["product_id"].mask(f.index == 77)).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"products.csv, row 77: column product_id has missing values"):
        build.build_tfrecords(files_with_bad_rows[0], str(path), str(tmp_path / "out"), max_length=MAX_LENGTH,
                              show_progress=False, preprocessor=preprocessor, **SETTINGS)
    pd.concat([products, products.iloc[[70]]], ignore_index=True).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"duplicate \(product_id, product_locale\).* at rows 70, "):
        build.build_tfrecords(files_with_bad_rows[0], str(path), str(tmp_path / "out"), max_length=MAX_LENGTH,
                              show_progress=False, preprocessor=preprocessor, **SETTINGS)
    assert not [name for name in os.listdir(tmp_path / "out") if name.startswith(".tmp.")]
