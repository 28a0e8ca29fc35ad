"""Shared test fixtures: paths to the real ESCI sample (optional) and quiet TensorFlow."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# XLA-compiled steps (--jit_compile, the TPU-like tests) without LLVM's optimisation passes: the
# tests check what the compiled step computes, not how fast its code runs, and a tiny model's
# compile dominates its run (measured: a recipe fine-tune with --jit_compile 35 s -> 23 s). The
# entry points the tests start inherit it; users' runs keep XLA's default.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: one TensorFlow thread each (and in the entry points the
    # tests start) instead of pools that spin against the other worker (measured: 7% less wall
    # time and 15% less CPU on the fit tests).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ESCI_SAMPLE = REPO.parent / "shared" / "data" / "esci_sample"


@pytest.fixture(scope="session")
def tiny_tfrecords(tmp_path_factory):
    """Train/eval shards of generated ESCI data on the demo vocabulary (run_fixtures), once a session."""
    from run_fixtures import write_tiny_tfrecords

    return write_tiny_tfrecords(str(tmp_path_factory.mktemp("records")))


@pytest.fixture(scope="module")
def recipe_files(tmp_path_factory):
    """The recipe tests' generated data files (recipe_fixtures.write_recipe_files), once a module."""
    from recipe_fixtures import write_recipe_files

    return write_recipe_files(tmp_path_factory.mktemp("recipe_data"))


@pytest.fixture(scope="session")
def esci_sample_dir():
    """../shared/data/esci_sample, or skip when it is absent."""
    if not (ESCI_SAMPLE / "examples.parquet").exists():
        pytest.skip(f"real ESCI sample not found at {ESCI_SAMPLE}")
    return ESCI_SAMPLE


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """fake-gcs-server and its gateway on 127.0.0.1 (gcs_fixtures), once a session."""
    from gcs_fixtures import GcsServer

    server = GcsServer(tmp_path_factory.mktemp("gcs"))
    yield server
    server.close()


def pytest_collection_modifyitems(session, config, items):
    """Files with slow tests first (stable otherwise): with `make test`'s workers (pytest-xdist,
    --dist loadfile) the long files start at once instead of ending the run on one worker."""
    has_slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in has_slow)
