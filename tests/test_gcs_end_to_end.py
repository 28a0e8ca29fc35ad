"""gs:// end to end against the local Cloud Storage server (gcs_fixtures): ESCI parquet on gs:// ->
tfrecords.build -> shards on gs:// -> trainers.fit with checkpoints, TensorBoard logs and the best
model on gs://, preempted by a real SIGTERM (exit 143, one line, a checkpoint of that step), rerun
and killed with SIGKILL in a checkpoint write, rerun to the end with the weights of an
uninterrupted run -> trainers.predict and trainers.export writing to gs://.

TensorFlow reaches the server through the gateway's TLS proxy, pandas through gcsfs; the
subprocesses inherit the same variables.
"""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from gcs_fixtures import environment_variables
from run_fixtures import TINY_CONFIG, checkpoint_values
from esci_tf import faults

pytestmark = pytest.mark.slow  # two trainers.fit subprocesses and an export (about a minute on 2 cores)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "esci-e2e"
STEPS, CHECKPOINT_EVERY = 30, 5


@pytest.fixture(scope="module")
def gcs(gcs_server):
    """The server's variables set for this module, a bucket with generated ESCI files, and their
    TFRecords built from gs:// to gs:// by tfrecords.build."""
    from esci_tf.data.synthetic import write_esci_files
    from tfrecords.build import build_tfrecords

    with environment_variables(gcs_server.environment()):
        root = gcs_server.create_bucket(BUCKET)
        examples, products = write_esci_files(16, 0, f"{root}/raw")
        summary = build_tfrecords(examples, products, f"{root}/data", tokenizer="xlm_roberta", max_length=24,
                                  task="all", num_folds=2, num_shards=2, show_progress=False)
        yield {"root": root, "examples": examples, "products": products, "summary": summary}


def fit_args(gcs, output_dir):
    return [f"--train_tfrecords={gcs['root']}/data/train-*", f"--eval_tfrecords={gcs['root']}/data/test-*",
            "--backbone=xlm_roberta", f"--backbone_config={TINY_CONFIG}", "--max_length=24", "--batch_size=8",
            "--learning_rate=1e-3", "--warmup_steps=1", f"--steps={STEPS}", "--eval_every_steps=15",
            f"--checkpoint_every_steps={CHECKPOINT_EVERY}", "--noprogress_bar", "--strategy=cpu", "--seed=0",
            f"--output_dir={output_dir}"]


def start_fit(gcs, output_dir, **env):
    command = [sys.executable, "-m", "trainers.fit", *fit_args(gcs, output_dir)]
    return subprocess.Popen(command, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def checkpoint_steps(output_dir) -> list:
    names = tf.io.gfile.glob(f"{output_dir}/checkpoints/ckpt-*.index")
    return sorted(int(re.search(r"ckpt-(\d+)\.index$", name).group(1)) for name in names)


def test_build_wrote_checked_shards_to_gs(gcs):
    shards = tf.io.gfile.glob(f"{gcs['root']}/data/*.tfrecord.gz")
    assert {os.path.basename(s).split("-")[0] for s in shards} == {"train", "test"}
    assert tf.io.gfile.exists(f"{gcs['root']}/data/summary.json")
    assert gcs["summary"]["total"]["pairs"] == len(pd.read_parquet(gcs["examples"], storage_options={}))


def test_fit_preempted_killed_and_resumed_on_gs_then_predict_and_export(gcs, tmp_path):
    from trainers import export, fit, predict

    run = f"{gcs['root']}/runs/preempted"
    # 1. A real SIGTERM once training is under way: exit 143, one line, a checkpoint of that step.
    process = start_fit(gcs, run)
    deadline = time.monotonic() + 240
    while not checkpoint_steps(run) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-3000:]
    line = stderr.strip().splitlines()[-1]
    found = re.fullmatch(r"trainers\.fit: preempted at step (\d+); rerun the same command to resume", line)
    assert found, stderr[-3000:]
    step = int(found.group(1))
    print(f"SIGTERM landed at step {step}")  # where it lands varies from run to run (pytest -s shows it)
    assert CHECKPOINT_EVERY <= step < STEPS and checkpoint_steps(run)[-1] == step
    assert not tf.io.gfile.exists(f"{run}/run.lock")  # released: the relaunch may start at once

    # 2. The same command resumes at exactly that step; SIGKILL in its next checkpoint write.
    process = start_fit(gcs, run, **{faults.ENV: "checkpoint_write@1:KILL"})
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == -signal.SIGKILL, stderr[-3000:]
    assert f"Resuming from step {step} of {STEPS}" in stderr
    assert checkpoint_steps(run)[-1] == step  # the killed save is not listed

    # 3. Once more, in this process, to the end: the weights, optimizer state and position of an
    # uninterrupted run (not its number of saves, which depends on where the SIGTERM landed).
    metrics = fit.run_with_args(["fit", *fit_args(gcs, run)])
    assert metrics["total_steps"] == STEPS and checkpoint_steps(run)[-1] == STEPS
    reference_dir = str(tmp_path / "reference")
    reference = fit.run_with_args(["fit", *fit_args(gcs, reference_dir)])
    expected, actual = checkpoint_values(reference_dir), checkpoint_values(run)
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
    assert [h["ndcg"] for h in metrics["history"]] == [h["ndcg"] for h in reference["history"]]
    for name in ("best_model.keras", "best_model.json", "metrics.json", "eval_history.jsonl", "preprocessing.json"):
        assert tf.io.gfile.exists(f"{run}/{name}"), name
    for kind in ("train", "eval"):
        assert tf.io.gfile.glob(f"{run}/logs/{kind}/events.out.tfevents.*"), kind
    assert not tf.io.gfile.glob(f"{run}/.tmp.*") and not tf.io.gfile.glob(f"{run}/checkpoints/*_temp*")

    # 4. Predictions and a SavedModel written to gs://.
    table = predict.run_with_args(["predict", f"--model_dir={run}", f"--examples={gcs['examples']}",
                                   f"--products={gcs['products']}", f"--output={gcs['root']}/out/preds.csv",
                                   "--task=all"])
    written = pd.read_csv(f"{gcs['root']}/out/preds.csv", storage_options={})
    assert len(written) == len(table) > 0 and np.allclose(written["score"], table["score"], atol=1e-6)
    path = export.export(run, f"{gcs['root']}/export")
    assert path == f"{gcs['root']}/export/1"
    assert tf.io.gfile.exists(f"{path}/saved_model.pb") and tf.io.gfile.glob(f"{path}/variables/variables.*")
