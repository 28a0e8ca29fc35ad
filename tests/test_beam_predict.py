"""trainers.predict --runner=DirectRunner (esci_tf.serving.beam_predict) scores with the exported
SavedModel and writes the local run's predictions file and task-1 submission on the same rows."""

import numpy as np
import pandas as pd
import pytest

from cli_fixtures import assert_one_line_error, run_module
from esci_tf import cli
from esci_tf.data.synthetic import generate_esci
from esci_tf.labels import PROB_COLUMNS
from tests.test_beam_build import DATAFLOW
from tests.test_serving_export import _entity_template, _tiny_run
from trainers import predict

pytestmark = pytest.mark.slow  # exports a tiny model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(a tiny run directory, its export's base directory, examples, products): generated data of
    several products per query, one query emoji only (scored, as the local run scores it)."""
    from trainers.export import export

    root = tmp_path_factory.mktemp("beam_predict")
    run_dir = _tiny_run(root / "run", _entity_template())
    export(run_dir, str(root / "export"))
    examples, products = generate_esci(num_queries=8, seed=4)
    examples.loc[examples["query_id"] == examples["query_id"].iloc[0], "query"] = "🎧🎧"
    paths = str(root / "examples.parquet"), str(root / "products.parquet")
    examples.to_parquet(paths[0], index=False)
    products.to_parquet(paths[1], index=False)
    return run_dir, str(root / "export"), *paths


def _predict(model_dir, examples, products, output, *flags):
    return predict.run_with_args(["predict", f"--model_dir={model_dir}", f"--examples={examples}",
                                  f"--products={products}", f"--output={output}", "--task=all", *flags])


def test_direct_runner_writes_the_local_predictions_and_submission(model, tmp_path):
    run_dir, export_base, examples, products = model
    local = _predict(run_dir, examples, products, tmp_path / "local.csv")
    on_beam = _predict(export_base, examples, products, tmp_path / "beam.csv", "--runner=DirectRunner")
    assert list(on_beam.columns) == list(predict.OUTPUT_COLUMNS) and len(local) == len(pd.read_parquet(examples))
    pd.testing.assert_frame_equal(on_beam[["query_id", "product_id", "product_locale"]],
                                  local[["query_id", "product_id", "product_locale"]])
    assert local["score"].std() > 1e-3  # scores differ from row to row: the comparison can fail
    np.testing.assert_allclose(on_beam[["score", *PROB_COLUMNS]], local[["score", *PROB_COLUMNS]], atol=1e-5)
    assert not [p.name for p in tmp_path.iterdir() if p.name not in ("local.csv", "beam.csv")]  # parts removed

    local = _predict(run_dir, examples, products, tmp_path / "local_submission.csv", "--submission")
    on_beam = _predict(export_base, examples, products, tmp_path / "beam_submission.csv", "--submission",
                       "--runner=DirectRunner")
    pd.testing.assert_frame_equal(on_beam, local)


def test_task_2_submission_and_dataflow_options_are_checked_first(model, tmp_path):
    _, export_base, examples, products = model
    with pytest.raises(ValueError, match="--task=2 --submission is the local run's"):
        _predict(export_base, examples, products, tmp_path / "x.csv", "--runner=DirectRunner", "--submission",
                 "--task=2")
    args = ["--examples=gs://b/e.parquet", "--products=gs://b/p.parquet", "--output=gs://b/predictions.csv"]
    result = run_module("trainers.predict", "--model_dir=gs://b/export", *args, *DATAFLOW, "--dry_run")
    assert result.returncode == 0, result.stderr
    assert "  score with the SavedModel  <- batch pairs [checks]" in result.stdout
    assert "--sdk_container_image=europe-docker.pkg.dev/p/esci/beam:1" in result.stdout
    local = run_module("trainers.predict", f"--model_dir={export_base}", *args, *DATAFLOW, "--dry_run")
    assert_one_line_error(local, "trainers.predict", f"--model_dir={export_base} must be gs://", code=cli.FLAG_EXIT)
