"""notebooks/esci_tf_colab.ipynb runs top to bottom on CPU (nbclient, a real kernel) with a tiny
configuration injected after its parameters cell, as papermill would: demo data, TFRecords,
training, evaluation, prediction and the SavedModel export all work, so the notebook cannot rot."""

import json
import os
import pathlib

import nbclient
import nbformat
import pytest

from run_fixtures import TINY_CONFIG

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "esci_tf_colab.ipynb"


def _with_parameters(notebook, **values):
    """The notebook with a cell setting `values` right after its 'parameters' cell."""
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return notebook


@pytest.mark.slow  # trains and exports a tiny model in a kernel
def test_the_colab_notebook_runs_on_cpu_with_demo_data(tmp_path):
    notebook = _with_parameters(
        nbformat.read(NOTEBOOK, as_version=4), WORK_DIR=str(tmp_path), DEMO_QUERIES=24, RUNTIME="auto",
        SETTINGS={"cpu": {"flagfile": "trainers/flags/demo.flags", "tokenizer": "xlm_roberta", "max_length": 24,
                          "task": "all", "num_shards": 1}},
        EXTRA_FIT_FLAGS=[f"--backbone_config={TINY_CONFIG}", "--nocross_attention", "--batch_size=8", "--steps=4",
                         "--noprogress_bar"])
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute(env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})  # the CPU fallback, as on a CPU runtime

    outputs = {i: "".join(o.get("text", "") + json.dumps(o.get("data", {})) for o in cell.get("outputs", []))
               for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "runtime: cpu; flags: trainers/flags/demo.flags" in text
    assert "eval NDCG" in text and "vs random order" in text
    assert (tmp_path / "run" / "metrics.json").exists() and "random_ndcg" in text
    assert (tmp_path / "export" / "1" / "saved_model.pb").exists() and "served score" in text
    assert not any(o.output_type == "error" for cell in notebook.cells for o in cell.get("outputs", []))
