"""python -m tfrecords.build on inputs it used to accept silently: no pairs, more shards than
queries, a query that cleaning empties (an error, or counted in summary.json with skip)."""

import json

import pytest

from cli_fixtures import assert_one_line_error, run_module
from esci_tf import cli
from esci_tf.data.synthetic import generate_esci


@pytest.fixture
def files(tmp_path):
    """Generated ESCI files of 10 queries whose first query is emoji only."""
    examples, products = generate_esci(num_queries=10, seed=0)
    first = examples["query_id"] == examples["query_id"].iloc[0]
    examples.loc[first, "query"] = "😀😀"
    paths = tmp_path / "examples.parquet", tmp_path / "products.parquet"
    examples.to_parquet(paths[0], index=False)
    products.to_parquet(paths[1], index=False)
    return examples, [f"--examples={paths[0]}", f"--products={paths[1]}", "--max_length=24", "--task=all",
                      "--num_folds=2"]


def build(*args):
    return run_module("tfrecords.build", *args)


def test_an_examples_file_without_rows_is_an_error(tmp_path, files):
    examples, args = files
    empty = tmp_path / "empty.parquet"
    examples.iloc[:0].to_parquet(empty, index=False)
    result = build(*args, f"--examples={empty}", f"--output_dir={tmp_path / 'out'}")
    assert_one_line_error(result, "tfrecords.build", f"{empty}: the file has no rows", code=cli.DATA_EXIT)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_emoji_only_query_is_an_error_or_counted_and_shards_are_capped(tmp_path, files):
    examples, args = files
    result = build(*args, f"--output_dir={tmp_path / 'raise'}")
    assert_one_line_error(result, "tfrecords.build", "empty query", "emoji", "--on_bad_rows=skip",
                          code=cli.DATA_EXIT)

    output_dir = tmp_path / "skip"
    result = build(*args, "--on_bad_rows=skip", "--num_shards=50", f"--output_dir={output_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((output_dir / "summary.json").read_text())
    dropped = int((examples["query"] == "😀😀").sum())
    assert summary["dropped"]["counts"] == {"empty_query": dropped}
    assert summary["total"]["pairs"] == len(examples) - dropped
    for split, stats in summary["splits"].items():
        assert len(stats["files"]) == stats["queries"] < 50, split
        assert all(f["records"] > 0 for f in stats["files"]), "no empty shard"
        assert len(list(output_dir.glob(f"{split}-*.tfrecord.gz"))) == stats["queries"]
        assert f"note: split {split} has {stats['queries']} queries" in result.stdout
    assert f"empty_query: {dropped}" in result.stdout


def test_more_folds_than_training_queries_names_the_flag(tmp_path, files):
    _, args = files
    result = build(*args, "--on_bad_rows=skip", "--num_folds=40", f"--output_dir={tmp_path / 'out'}")
    assert_one_line_error(result, "tfrecords.build", "--num_folds=40 is more than the", code=cli.FLAG_EXIT)
