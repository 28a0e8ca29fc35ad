"""tfrecords.build --runner=DirectRunner (esci_tf.records.beam_build) writes the local builder's
shards and summary.json, record by record; its bad-row errors are the local build's lines; a
Dataflow --dry_run prints the options and the job graph and submits nothing."""

import pathlib
import re

import pandas as pd
import pytest

from cli_fixtures import assert_one_line_error, run_module
from esci_tf import cli
from esci_tf.data.synthetic import generate_esci
from esci_tf.errors import DataError
from tests.test_tfrecords_build_workers import (MAX_LENGTH, SETTINGS, _output, files_with_bad_rows,  # noqa: F401
                                                preprocessor)
from tfrecords import build

REPO = pathlib.Path(__file__).resolve().parents[1]
DIRECT = dict(runner="DirectRunner", pipeline_args=["--direct_num_workers=1"])
DATAFLOW = ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west4",
            "--temp_location=gs://my-bucket/tmp", "--sdk_container_image=europe-docker.pkg.dev/p/esci/beam:1",
            "--machine_type=n2-standard-8", "--max_num_workers=50"]


def _build(paths, output_dir, preprocessor, **settings):
    return build.build_tfrecords(*paths, str(output_dir), max_length=MAX_LENGTH, show_progress=False,
                                 preprocessor=preprocessor, workers=1, **dict(SETTINGS, **settings))


def test_direct_runner_writes_the_local_build(tmp_path, files_with_bad_rows, preprocessor):  # noqa: F811
    local = _build(files_with_bad_rows, tmp_path / "local", preprocessor)
    assert set(local["dropped"]["counts"]) == {"unknown_label", "missing_product", "duplicate_pair",
                                                "conflicting_labels"}
    (tmp_path / "beam").mkdir()
    (tmp_path / "beam" / "train-00000-of-00009.tfrecord.gz").write_bytes(b"stale")  # removed by the build
    on_beam = _build(files_with_bad_rows, tmp_path / "beam", preprocessor, **DIRECT)
    expected, got = _output(tmp_path / "local"), _output(tmp_path / "beam")
    assert sum(name.endswith(".tfrecord.gz") for name in expected) == 6
    assert list(got) == list(expected)
    for name, content in expected.items():
        assert got[name] == content, f"{name} differs on Beam"
    assert on_beam["dropped"] == local["dropped"]


def test_bad_rows_are_the_local_builds_line_and_nothing_is_written(tmp_path, files_with_bad_rows,  # noqa: F811
                                                                    preprocessor):  # noqa: F811
    with pytest.raises(DataError) as local:
        _build(files_with_bad_rows, tmp_path / "local", preprocessor, on_bad_rows="raise")
    (tmp_path / "beam").mkdir()
    (tmp_path / "beam" / "summary.json").write_text("{}")  # an earlier build's: a failed build keeps it
    with pytest.raises(DataError) as on_beam:
        _build(files_with_bad_rows, tmp_path / "beam", preprocessor, on_bad_rows="raise", **DIRECT)
    assert str(on_beam.value) == str(local.value)
    assert "examples.parquet, row 1: unknown esci_label (unknown_label, 1 rows) at row 1" in str(on_beam.value)
    assert sorted(p.name for p in (tmp_path / "beam").iterdir()) == ["summary.json"]


def test_dataflow_dry_run_prints_options_and_graph(tmp_path, files_with_bad_rows):  # noqa: F811
    args = ["--examples=gs://my-bucket/esci/examples.parquet", "--products=gs://my-bucket/esci/products.parquet",
            "--output_dir=gs://my-bucket/records", "--max_length=32"]
    result = run_module("tfrecords.build", *args, *DATAFLOW, "--dry_run")
    assert result.returncode == 0, result.stderr
    for option in DATAFLOW[1:]:
        assert option in result.stdout
    for stage in ("read and check examples", "check queries", "join products", "checks, folds and shards",
                  "encode and write shards", "summary.json"):
        assert f"  {stage}" in result.stdout
    assert "  encode and write shards  <- group shards [checks, folds and shards]" in result.stdout
    missing = run_module("tfrecords.build", *args, *DATAFLOW[:1], *DATAFLOW[2:], "--dry_run")
    assert_one_line_error(missing, "tfrecords.build", "--runner=DataflowRunner needs --project", code=cli.FLAG_EXIT)
    local = run_module("tfrecords.build", *args[:2], f"--output_dir={tmp_path}", *DATAFLOW, "--dry_run")
    assert_one_line_error(local, "tfrecords.build", f"--output_dir={tmp_path} must be gs://", code=cli.FLAG_EXIT)
    no_runner = run_module("tfrecords.build", *args, "--dry_run")
    assert_one_line_error(no_runner, "tfrecords.build", "--dry_run describes a Beam pipeline: it needs --runner",
                          code=cli.FLAG_EXIT)


def test_the_dockerfile_is_beams_sdk_image_of_the_pinned_beam_with_the_package():
    """The Dataflow workers' image: Beam's SDK container of setup.py's Beam and Python, installing
    every package setup.py ships with the beam extra."""
    setup = (REPO / "setup.py").read_text()
    beam_version = re.search(r'BEAM = \["apache-beam\[gcp,tfrecord\]==([0-9.]+)"\]', setup)[1]
    python = re.search(r'python_requires=">=(3\.\d+),<', setup)[1]
    lines = (REPO / "Dockerfile").read_text().splitlines()
    assert f"FROM apache/beam_python{python}_sdk:{beam_version}" in lines
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    packages = re.search(r'find_packages\(include=\[(.*?)\]\)', setup)[1]
    assert {name.strip(' "').split(".")[0] for name in packages.split(",")} <= copied
    assert "setup.py" in copied and any("pip install" in line and "'.[beam]'" in line for line in lines)


def test_dataflow_checks_credentials_and_buckets_before_submitting(gcs_server, tmp_path):
    """A Dataflow build's gs:// inputs, output and --temp_location pass esci_tf.cloud_paths' checks
    before a job is submitted: a missing bucket or no credentials is one line naming the flag."""
    from esci_tf import beam_options
    from esci_tf.cloud_paths import CloudPathError
    from gcs_fixtures import environment_variables
    from tests.test_cloud_paths import bare_environment

    gcs_server.create_bucket("beam-ok")
    paths = {"examples": "gs://beam-ok/esci/examples.parquet", "products": "gs://beam-ok/esci/examples.parquet",
             "output_dir": "gs://beam-ok/records"}
    with environment_variables(gcs_server.environment()):
        import tensorflow as tf

        with tf.io.gfile.GFile(paths["examples"], "wb") as stream:
            stream.write(b"PAR1")
        beam_options.check_runner_options("DataflowRunner", [a.replace("my-bucket", "beam-ok") for a in DATAFLOW],
                                          paths)
        with pytest.raises(CloudPathError, match=r"^--temp_location=gs://my-bucket/tmp: bucket .* does not exist"):
            beam_options.check_runner_options("DataflowRunner", DATAFLOW, paths)
    args = [f"--{flag}={path}" for flag, path in paths.items()]
    result = run_module("tfrecords.build", *args, *DATAFLOW, timeout=60, environment=bare_environment(tmp_path))
    assert_one_line_error(result, "tfrecords.build", "--examples=gs://beam-ok/esci/examples.parquet",
                          "no Google Cloud credentials", code=1)


def _with_query_conflict(examples, products):
    examples.loc[3, "query"] = examples.loc[3, "query"] + " other"
    return examples, products


def _with_missing_product(examples, products):
    examples.loc[[4, 9], "product_id"] = ["GONE1", "GONE2"]
    return examples, products


def _with_duplicate_example_id(examples, products):
    examples.loc[[2, 7], "example_id"] = examples.loc[0, "example_id"]
    return examples, products


def _with_duplicate_product(examples, products):
    return examples, pd.concat([products, products.iloc[[3]]], ignore_index=True)


@pytest.mark.parametrize("spoil, fragment", [
    (_with_query_conflict, "examples.parquet, row 0: one query_id with different query strings (query_id_conflict"),
    (_with_missing_product, "examples.parquet, row 4: no product with this (product_id, product_locale) in "),
    (_with_duplicate_example_id, "examples.parquet, row 0: duplicate example_id"),
    (_with_duplicate_product, "products.parquet, row 3: duplicate (product_id, product_locale)"),
])
def test_cross_row_errors_are_the_local_builds_line(tmp_path, preprocessor, spoil, fragment):  # noqa: F811
    """The checks across rows, as Beam transforms (per query, the product join, unique keys), stop
    the build with the line the local build gives: the file, the rows, how many."""
    examples, products = spoil(*generate_esci(num_queries=6, seed=2))
    paths = str(tmp_path / "examples.parquet"), str(tmp_path / "products.parquet")
    examples.to_parquet(paths[0], index=False, row_group_size=7)  # the rows in several pieces
    products.to_parquet(paths[1], index=False, row_group_size=9)
    errors = []
    for runner in ({}, DIRECT):
        with pytest.raises(DataError) as raised:
            _build(paths, tmp_path / "out", preprocessor, on_bad_rows="raise", num_folds=2, **runner)
        errors.append(str(raised.value))
    assert errors[1] == errors[0] and fragment in errors[0], errors
