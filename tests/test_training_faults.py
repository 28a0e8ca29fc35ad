"""Fault injection: `python -m trainers.fit` killed (SIGKILL, SIGTERM) at chosen points
(esci_tf.faults), artifacts truncated or corrupted, a second run on a live run's
output_dir, changed settings. Each rerun ends with the weights, best model and metrics of one
uninterrupted reference run, or stops with one clear line.

The reference (module fixture) evaluates at steps 3 and 6 and checkpoints at 2, 4, 6; its best
evaluation is the last one (asserted), as in the reported case of a kill at the final
evaluation's best-model write.
"""

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from cli_fixtures import assert_one_line_error, run_module
from run_fixtures import SAVE_COUNTER, TINY_CONFIG, checkpoint_values
from esci_tf import cli, faults, files
from esci_tf.training import checkpointing, preemption, train_lib
from esci_tf.training.run_settings import SETTINGS_FILE
from trainers import fit

pytestmark = pytest.mark.slow  # subprocess runs of a tiny model (2-4 minutes for the module on 2 cores)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--synthetic_queries=16", "--task=all", "--eval_fraction=0.25", "--backbone=xlm_roberta",
        f"--backbone_config={TINY_CONFIG}", "--cross_attention", "--max_length=24", "--batch_size=8",
        "--learning_rate=3e-3", "--warmup_steps=1", "--steps=6", "--eval_every_steps=3",
        "--checkpoint_every_steps=2", "--num_shards=2", "--noprogress_bar", "--strategy=cpu", "--seed=0"]
TRAIN_SCALARS_EVERY = 2


def fit_in_process(output_dir, *extra):
    return fit.run_with_args(["fit", *ARGS, f"--output_dir={output_dir}", *extra])


def fit_process(output_dir, fault, *extra, wait=True):
    """trainers.fit in a subprocess with ESCI_TF_FAULT=fault; the finished process (or, with
    wait=False, the running Popen)."""
    env = dict(os.environ, **{faults.ENV: fault})
    command = [sys.executable, "-m", "trainers.fit", *ARGS, f"--output_dir={output_dir}", *extra]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    if wait:
        process.output = process.communicate(timeout=300)[0]
    return process


def model_weights(output_dir) -> dict:
    """Every array in best_model.keras's weights file."""
    with zipfile.ZipFile(os.path.join(output_dir, checkpointing.BEST_MODEL)) as archive:
        data = archive.read("model.weights.h5")
    arrays = {}
    with h5py.File(io.BytesIO(data), "r") as weights:
        weights.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset)
                           else None)
    return arrays


def evaluations(metrics) -> list:
    return [{k: v for k, v in h.items() if k != "eval_seconds"} for h in metrics["history"]]


def assert_same_run(output_dir, reference, metrics):
    """output_dir ended where the reference run did: checkpoint, best model, evaluations."""
    expected, actual = reference["checkpoint"], checkpoint_values(output_dir)
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
    weights = model_weights(output_dir)
    assert weights.keys() == reference["model"].keys()
    for name, value in reference["model"].items():
        np.testing.assert_array_equal(weights[name], value, err_msg=name)
    assert files.read_json(os.path.join(output_dir, checkpointing.BEST_INFO)) == reference["best"]
    assert evaluations(metrics) == evaluations(reference["metrics"])
    leftovers = [name for _, dirs, names in os.walk(output_dir) for name in dirs + names
                 if name.startswith(files.TEMP_PREFIX) or name.endswith("_temp")]
    assert leftovers == []


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_lib, "TRAIN_SCALARS_EVERY", TRAIN_SCALARS_EVERY)
        output_dir = str(tmp_path_factory.mktemp("reference"))
        metrics = fit_in_process(output_dir)
    best = files.read_json(os.path.join(output_dir, checkpointing.BEST_INFO))
    assert [h["step"] for h in metrics["history"]] == [3, 6] and best["step"] == 6
    return {"dir": output_dir, "metrics": metrics, "best": best, "checkpoint": checkpoint_values(output_dir),
            "model": model_weights(output_dir)}


def copy_of(reference, tmp_path):
    target = str(tmp_path / "run")
    shutil.copytree(reference["dir"], target)
    return target


def preempted_at(process, how="preempted", code=preemption.EXIT_CODE) -> int:
    """The step of a run that SIGTERM (SIGINT: how="interrupted", code=130) stopped: the exit
    status and its one last line, no traceback."""
    assert process.returncode == code, process.output
    last = process.output.strip().splitlines()[-1]
    found = re.fullmatch(rf"trainers\.fit: {how} at step (\d+); rerun the same command to resume", last)
    assert found, process.output[-3000:]
    assert "Traceback" not in process.output and "KeyboardInterrupt" not in process.output, process.output[-3000:]
    return int(found.group(1))


def test_repeated_kills_while_writing_shards_and_best_models_resume_to_the_reference(reference, tmp_path):
    """Three runs stopped in turn, each resuming the one before: SIGTERM in a shard write (the
    write is abandoned, its temporary removed: preempted at step 0), SIGKILL in step 3's
    best-model write (resumed from ckpt-2: step 3 is trained and evaluated again), SIGTERM in
    the final evaluation's best-model write (abandoned; resumed at step 6 of 6: redone)."""
    output_dir = tmp_path / "run"
    data = output_dir / "data"
    temporary_model = output_dir / (files.TEMP_PREFIX + checkpointing.BEST_MODEL)

    process = fit_process(output_dir, "shard_write@2:TERM")
    assert preempted_at(process) == 0
    assert not any(name.startswith(files.TEMP_PREFIX) for name in os.listdir(data))
    assert not (data / "data_info.json").exists()

    process = fit_process(output_dir, "best_model_write@1:KILL")
    assert process.returncode == -signal.SIGKILL, process.output
    assert temporary_model.exists() and not (output_dir / checkpointing.BEST_MODEL).exists()
    assert files.read_json(str(output_dir / checkpointing.BEST_INFO))["step"] == 3

    process = fit_process(output_dir, "best_model_write@2:TERM")
    assert preempted_at(process) == 6
    assert not temporary_model.exists()
    assert tf.train.latest_checkpoint(str(output_dir / train_lib.CHECKPOINT_DIR)).endswith("ckpt-6")

    metrics = fit_in_process(output_dir)
    assert_same_run(output_dir, reference, metrics)


def test_ctrl_c_stops_at_a_checkpoint_with_one_line_and_the_rerun_resumes_to_the_reference(reference, tmp_path):
    """SIGINT (what Ctrl-C sends), here in ckpt-2's write: the run ends as a SIGTERM does, with
    the checkpoint of the step it reached, one line and exit 130 (not 143: not a preemption)."""
    output_dir = tmp_path / "run"
    process = fit_process(output_dir, "checkpoint_write@1:INT")
    assert preempted_at(process, how="interrupted", code=128 + signal.SIGINT) == 2
    assert tf.train.latest_checkpoint(str(output_dir / train_lib.CHECKPOINT_DIR)).endswith("ckpt-2")
    metrics = fit_in_process(output_dir)
    assert_same_run(output_dir, reference, metrics)


class SigtermAt(keras.callbacks.Callback):
    """Sends this process SIGTERM at the end of batch `at` (a preemption at a chosen step)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_sigterm_between_checkpoint_steps_resumes_to_the_reference_state_with_one_save_more(reference, tmp_path):
    """Step 3 is not a checkpoint step (every 2): the SIGTERM saves ckpt-3, a save the reference
    never made. The resumed run must equal the reference in weights, optimizer state and position
    (checkpoint_values), not in tf.train.Checkpoint's save_counter, which counts the saves."""
    output_dir = str(tmp_path / "run")
    with pytest.raises(preemption.Preempted) as stopped:
        fit.run_with_args(["fit", *ARGS, f"--output_dir={output_dir}"], callbacks=[SigtermAt(3)])
    assert stopped.value.step == 3
    metrics = fit_in_process(output_dir)
    assert_same_run(output_dir, reference, metrics)
    saves = [tf.train.load_checkpoint(os.path.join(d, train_lib.CHECKPOINT_DIR)).get_tensor(SAVE_COUNTER)
             for d in (reference["dir"], output_dir)]
    assert saves[1] == saves[0] + 1, saves


def test_a_run_stopped_in_a_checkpoint_write_keeps_its_lock_and_its_kill_leaves_nothing_a_resume_trusts(
        reference, tmp_path):
    output_dir = tmp_path / "run"
    first = fit_process(output_dir, "checkpoint_write@2:STOP", wait=False)  # in ckpt-4's write
    try:
        _, status = os.waitpid(first.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), first.communicate()[0]
        flags_before = (output_dir / train_lib.FLAGS_FILE).read_text()
        with pytest.raises(flags.Error, match=rf"--output_dir={output_dir} is in use by another run \(pid "
                                              rf"{first.pid} on host"):
            fit_in_process(output_dir, "--eval_every_steps=2")
        assert (output_dir / train_lib.FLAGS_FILE).read_text() == flags_before
    finally:
        first.kill()
        first.communicate()
    checkpoints = output_dir / train_lib.CHECKPOINT_DIR
    assert (checkpoints / "ckpt-4_temp").is_dir()
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-2")
    # The killed run's lock is stale: taken over. Another checkpoint frequency (it cannot change
    # the results): ckpt-4 is never written again, so only the cleanup removes ckpt-4_temp.
    metrics = fit_in_process(output_dir, "--checkpoint_every_steps=3")
    assert_same_run(output_dir, reference, metrics)


def test_a_truncated_final_best_model_is_rebuilt(reference, tmp_path, caplog):
    output_dir = copy_of(reference, tmp_path)
    open(os.path.join(output_dir, checkpointing.BEST_MODEL), "w").close()  # 0 bytes
    with caplog.at_level(logging.WARNING):
        metrics = fit_in_process(output_dir)
    assert "rebuilding it by evaluating step 6 again" in caplog.text
    assert_same_run(output_dir, reference, metrics)


def test_predict_with_a_truncated_best_model_names_the_file_in_one_line(reference, tmp_path):
    output_dir = copy_of(reference, tmp_path)
    model = os.path.join(output_dir, checkpointing.BEST_MODEL)
    with open(model, "r+b") as stream:
        stream.truncate(os.path.getsize(model) // 2)
    data = os.path.join(output_dir, "data")
    result = run_module("trainers.predict", f"--model_dir={output_dir}", "--task=all",
                        f"--examples={data}/synthetic_examples.parquet", f"--products={data}/synthetic_products.parquet",
                        f"--output={tmp_path / 'preds.csv'}")
    assert_one_line_error(result, "trainers.predict", f"{model}: truncated or corrupt: not a .keras archive",
                          code=cli.DATA_EXIT)


def test_an_unreadable_earlier_best_model_is_a_clear_error(reference, tmp_path):
    output_dir = copy_of(reference, tmp_path)
    history = os.path.join(output_dir, train_lib.HISTORY_FILE)
    entries = [json.loads(line) for line in open(history)]
    entries[0]["ndcg"] = 0.99  # step 3 is now the best by the history...
    files.write_text(history, "".join(json.dumps(e) + "\n" for e in entries))
    files.write_json(os.path.join(output_dir, checkpointing.BEST_INFO), {"ndcg": 0.99, "step": 3})
    with open(os.path.join(output_dir, checkpointing.BEST_MODEL), "r+b") as stream:
        stream.truncate(1000)  # ...and its model file is cut, with no checkpoint of step 3 left
    with pytest.raises(flags.Error, match=r"best_model.keras is not a \.keras archive .*, and the weights of "
                                          r"step 3 are no longer in the checkpoints; delete .* to train the run again"):
        fit_in_process(output_dir)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(reference, tmp_path, caplog):
    output_dir = copy_of(reference, tmp_path)
    data = os.path.join(output_dir, train_lib.CHECKPOINT_DIR, "ckpt-6.data-00000-of-00001")
    with open(data, "r+b") as stream:
        stream.truncate(os.path.getsize(data) // 2)
    with caplog.at_level(logging.WARNING):
        metrics = fit_in_process(output_dir)
    assert "ckpt-6 cannot be read" in caplog.text
    assert_same_run(output_dir, reference, metrics)


def test_a_truncated_cached_shard_is_rebuilt(reference, tmp_path, caplog):
    output_dir = copy_of(reference, tmp_path)
    shard = os.path.join(output_dir, "data", "train-00000-of-00002.tfrecord.gz")
    size = os.path.getsize(shard)
    with open(shard, "r+b") as stream:
        stream.truncate(size // 2)
    with caplog.at_level(logging.WARNING):
        metrics = fit_in_process(output_dir)
    assert f"shard train-00000-of-00002.tfrecord.gz is {size // 2} bytes, built with {size} bytes" in caplog.text
    assert os.path.getsize(shard) == size
    assert_same_run(output_dir, reference, metrics)


def test_a_resume_with_other_result_settings_is_refused_in_one_line(reference, tmp_path):
    output_dir = copy_of(reference, tmp_path)
    kept = {name: open(os.path.join(output_dir, name)).read() for name in (train_lib.FLAGS_FILE, SETTINGS_FILE)}
    with pytest.raises(flags.Error) as refused:
        fit_in_process(output_dir, "--seed=1", "--learning_rate=0.002", "--dropout=0.2")
    message = str(refused.value)
    assert "\n" not in message
    for change in ("--dropout 0.1 -> 0.2", "--learning_rate 0.003 -> 0.002", "--seed 0 -> 1",
                   "start fresh with another --output_dir"):
        assert change in message
    wider = TINY_CONFIG.replace('"hidden_dim": 32', '"hidden_dim": 48')
    with pytest.raises(flags.Error, match=r"--backbone_config \{.*\"hidden_dim\": 32.*\} -> \{.*\"hidden_dim\": 48"):
        fit_in_process(output_dir, f"--backbone_config={wider}")
    assert {name: open(os.path.join(output_dir, name)).read() for name in kept} == kept
    # Evaluation and checkpoint frequency cannot change the results: accepted.
    metrics = fit_in_process(output_dir, "--eval_every_steps=2", "--checkpoint_every_steps=5")
    assert_same_run(output_dir, reference, metrics)
    assert "--eval_every_steps=2" in open(os.path.join(output_dir, train_lib.FLAGS_FILE)).read()


def _scalars(log_dir: str, tag: str) -> dict:
    """{step: value} of one scalar in a TensorBoard log directory."""
    values = {}
    for path in tf.io.gfile.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def test_tensorboard_has_every_evaluation_and_the_training_scalars_at_their_frequency(reference):
    logs = os.path.join(reference["dir"], train_lib.LOG_DIR)
    ndcg = _scalars(os.path.join(logs, "eval"), "ndcg")
    assert ndcg == pytest.approx({h["step"]: h["ndcg"] for h in reference["metrics"]["history"]})
    assert sorted(_scalars(os.path.join(logs, "train"), "loss")) == [2, 4, 6]  # every TRAIN_SCALARS_EVERY
    assert sorted(_scalars(os.path.join(logs, "train"), "learning_rate")) == [2, 4, 6]
