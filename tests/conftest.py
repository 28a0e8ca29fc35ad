"""Shared test fixtures: paths to the real ESCI sample (optional) and quiet TensorFlow."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ESCI_SAMPLE = REPO.parent / "shared" / "data" / "esci_sample"


@pytest.fixture(scope="session")
def esci_sample_dir():
    """../shared/data/esci_sample, or skip when it is absent."""
    if not (ESCI_SAMPLE / "examples.parquet").exists():
        pytest.skip(f"real ESCI sample not found at {ESCI_SAMPLE}")
    return ESCI_SAMPLE
