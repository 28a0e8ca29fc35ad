"""esci_tf.cloud_paths: gs:// paths that cannot be used fail in seconds with one line naming the
flag, the path and what is missing. Credentials and network for real (subprocesses with the
environment of a machine that has none), bucket, object and permission against the local server."""

import os
import pathlib
import time

import pytest

from cli_fixtures import assert_one_line_error, run_module
from esci_tf import cloud_paths
from esci_tf.cloud_paths import CloudPathError
from gcs_fixtures import environment_variables

# What a machine without Google Cloud credentials or settings has: none of these.
CLOUD_VARIABLES = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_AUTH_TOKEN_FOR_TESTING", "STORAGE_EMULATOR_HOST",
                   "CLOUDSDK_CONFIG", "GCE_METADATA_HOST", "GCE_METADATA_IP", "http_proxy", "https_proxy",
                   "HTTPS_PROXY", "HTTP_PROXY", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE")


def bare_environment(home: pathlib.Path, **extra) -> dict:
    """os.environ as on a machine without credentials: no cloud variables, an empty home (no
    gcloud application-default file)."""
    environment = {k: v for k, v in os.environ.items() if k not in CLOUD_VARIABLES}
    environment.update(HOME=str(home), **extra)
    if cloud_paths._on_google_vm():  # a Compute Engine VM has its service account: not such a machine
        environment["NO_GCE_CHECK"] = "true"
    return environment


def build_args(examples, products, output_dir):
    return ["--examples", examples, "--products", products, "--output_dir", output_dir]


def test_without_credentials_build_fails_in_seconds_naming_the_path(tmp_path):
    """The issue's case: `timeout 60 python -m tfrecords.build --examples gs://nonexistent-bucket/...`
    printed nothing for minutes; now one line at once."""
    start = time.monotonic()
    result = run_module("tfrecords.build", *build_args("gs://nonexistent-bucket/x.parquet",
                                                      "gs://nonexistent-bucket/y.parquet", tmp_path / "out"),
                        timeout=60, environment=bare_environment(tmp_path))
    seconds = time.monotonic() - start
    assert_one_line_error(result, "tfrecords.build", "--examples=gs://nonexistent-bucket/x.parquet",
                          "no Google Cloud credentials", "gcloud auth application-default login", code=1)
    assert seconds < 20, seconds


def test_without_network_output_dir_says_network(tmp_path):
    """Credentials present but Cloud Storage unreachable (the proxy every request must take is
    down): the output_dir check says so, naming the path, instead of "Could not resolve host"."""
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens
    environment = bare_environment(tmp_path, GOOGLE_AUTH_TOKEN_FOR_TESTING="token", https_proxy=closed,
                                   HTTPS_PROXY=closed, NO_GCE_CHECK="true")
    local = tmp_path / "examples.parquet"
    result = run_module("tfrecords.build", *build_args(local, local, "gs://some-bucket/data"), timeout=60,
                        environment=environment)
    assert_one_line_error(result, "tfrecords.build", "--output_dir=gs://some-bucket/data",
                          "cannot reach Cloud Storage", "(network)", code=1)


def test_a_missing_credentials_file_is_named(tmp_path, monkeypatch):
    for name in CLOUD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    with pytest.raises(CloudPathError, match=r"--examples=gs://b/x.parquet: .*GOOGLE_APPLICATION_CREDENTIALS "
                                             r"names .*key.json, which does not exist"):
        cloud_paths.check_inputs({"examples": "gs://b/x.parquet"})


@pytest.fixture(scope="module")
def server(gcs_server):
    """The local server, with a bucket holding one file, one the caller may only read, one it may
    not use at all; its variables set for this module."""
    gcs_server.create_bucket("paths-ok")
    gcs_server.create_bucket("paths-read-only")
    gcs_server.create_bucket("paths-denied")
    with environment_variables(gcs_server.environment()):
        import tensorflow as tf

        for bucket in ("paths-ok", "paths-read-only"):
            with tf.io.gfile.GFile(f"gs://{bucket}/raw/examples.parquet", "wb") as stream:
                stream.write(b"PAR1")
        gcs_server.deny("paths-denied")
        gcs_server.deny("paths-read-only", writes_only=True)
        yield gcs_server


def test_readable_inputs_and_writable_outputs_pass(server):
    cloud_paths.check_inputs({"examples": "gs://paths-ok/raw/examples.parquet", "model_dir": "gs://paths-ok/raw",
                              "train_tfrecords": "gs://paths-ok/raw/ex*", "products": None})
    cloud_paths.check_output("gs://paths-ok/new/run", "output_dir")
    cloud_paths.check_output("gs://paths-ok/new/preds.csv", "output", directory=False)
    import tensorflow as tf

    assert tf.io.gfile.listdir("gs://paths-ok/") == ["raw/"]  # the write probes were deleted


@pytest.mark.parametrize("flag,path,fragments", [
    ("examples", "gs://no-such-bucket/x.parquet", ("bucket gs://no-such-bucket does not exist",)),
    ("output_dir", "gs://no-such-bucket/run", ("bucket gs://no-such-bucket does not exist",)),
    ("examples", "gs://paths-ok/raw/missing.parquet", ("not found",)),
    ("train_tfrecords", "gs://paths-ok/data/train-*", ("no file matches it",)),
    ("examples", "gs://paths-denied/raw/examples.parquet", ("permission denied", "may not list objects",
                                                             "HTTP 403")),
    ("output_dir", "gs://paths-read-only/run", ("permission denied", "may not create objects")),
])
def test_unusable_paths_are_one_line_naming_them(server, flag, path, fragments):
    with pytest.raises(CloudPathError) as raised:
        if flag.startswith("output"):
            cloud_paths.check_output(path, flag)
        else:
            cloud_paths.check_inputs({flag: path})
    message = str(raised.value)
    assert message.startswith(f"--{flag}={path}: ") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_entry_points_check_their_gs_paths_first(server, tmp_path):
    """trainers.export and trainers.predict stop on an unusable path before loading anything."""
    start = time.monotonic()
    result = run_module("trainers.export", "--model_dir=gs://paths-denied/run", f"--export_dir={tmp_path}/export")
    assert_one_line_error(result, "trainers.export", "--model_dir=gs://paths-denied/run", "permission denied",
                          code=1)
    assert time.monotonic() - start < 20
    from trainers import predict

    with pytest.raises(CloudPathError, match=r"^--output=gs://no-such-bucket/p.csv: bucket .* does not exist"):
        predict.run_with_args(["predict", "--model_dir=gs://paths-ok/raw", "--examples=gs://paths-ok/raw/examples.parquet",
                               "--products=gs://paths-ok/raw/examples.parquet", "--output=gs://no-such-bucket/p.csv"])
