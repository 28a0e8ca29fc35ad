"""trainers.predict streams chunks to its output: the same file as scoring the whole frame at
once, and a run killed by SIGKILL mid-file, started again with the same command, continues after
its last recorded chunk (it scores only the chunks after it) and writes the identical file: with
a BM25 ranker and with a trainers.fit cross-encoder directory; Ctrl-C (SIGINT) the same, after
one line."""

import io
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest

from cli_fixtures import assert_one_line_error, ctrl_c_as_in_a_terminal, run_module
from esci_tf.data.reader import load_esci
from esci_tf.data.synthetic import generate_esci
from esci_tf.rankers import base as rankers_base
from esci_tf.rankers.base import predict as predict_frame
from esci_tf.rankers.bm25 import BM25Ranker
from esci_tf.faults import ENV
from run_fixtures import TINY_CONFIG
from trainers import fit, predict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNK = 40


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """(files, model_dir, the uninterrupted output's bytes): a BM25 ranker over generated data."""
    directory = tmp_path_factory.mktemp("predict")
    examples, products = generate_esci(num_queries=20, seed=2)
    paths = str(directory / "examples.parquet"), str(directory / "products.parquet")
    examples.drop(columns=["esci_label"]).to_parquet(paths[0], index=False)
    products.to_parquet(paths[1], index=False)
    model_dir = str(directory / "bm25")
    BM25Ranker.fit(products["product_title"].tolist()).save(model_dir)
    args = [f"--model_dir={model_dir}", f"--examples={paths[0]}", f"--products={paths[1]}", "--task=all",
            f"--chunk_size={CHUNK}"]
    predict.run_with_args(["predict", *args, f"--output={directory / 'whole.csv'}"])
    return paths, model_dir, args, (directory / "whole.csv").read_bytes()


@pytest.fixture(scope="module")
def cross_encoder_scored(tmp_path_factory, scored):
    """The same files scored by a tiny trainers.fit cross-encoder (its --output_dir)."""
    paths, _, args, _ = scored
    run = tmp_path_factory.mktemp("fit")
    fit.run_with_args(["fit", "--synthetic_queries=24", "--eval_fraction=0.25", "--backbone=xlm_roberta",
                       f"--backbone_config={TINY_CONFIG}", "--max_length=24", "--batch_size=8", "--steps=2",
                       "--noprogress_bar", "--num_shards=1", f"--output_dir={run}"])
    args = [f"--model_dir={run}", *args[1:]]
    whole = tmp_path_factory.mktemp("whole") / "whole.csv"
    predict.run_with_args(["predict", *args, f"--output={whole}"])
    return args, whole.read_bytes()


def test_chunks_write_what_the_whole_frame_scores(scored, tmp_path):
    paths, model_dir, _, written = scored
    frame, _ = load_esci(*paths, task="all", require_labels=False)
    assert len(frame) > 3 * CHUNK
    prediction = predict_frame(BM25Ranker.load(model_dir), frame)
    expected = predict.predictions_table(frame, prediction.scores, prediction.probabilities).to_csv(index=False)
    assert written.decode() == expected
    assert sorted(os.listdir(os.path.dirname(paths[0]))) == ["bm25", "examples.parquet", "products.parquet",
                                                             "whole.csv"]


def _kill_then_rerun(args, written, tmp_path, monkeypatch, how="KILL"):
    """Stops `trainers.predict args` (a subprocess) by SIGKILL (or `how`: INT, Ctrl-C's signal)
    with its 3rd chunk on disk but not recorded, runs the same command again here and returns how
    many chunks the rerun scored."""
    output = tmp_path / "preds.csv"
    command = [sys.executable, "-m", "trainers.predict", *args, f"--output={output}"]
    env = dict(os.environ, PYTHONPATH=REPO, **{ENV: f"predictions_write@3:{how}"})  # chunk 3 on disk, not recorded
    killed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    if how == "KILL":
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    else:  # Ctrl-C: one line, exit 130, no traceback
        assert killed.returncode == 128 + signal.SIGINT, killed.stderr[-2000:]
        assert killed.stderr.strip().splitlines()[-1] == ("trainers.predict: interrupted (Ctrl-C); rerun the same "
                                                          "command to continue"), killed.stderr[-2000:]
        assert "Traceback" not in killed.stderr, killed.stderr[-2000:]
    assert not output.exists()
    partial = (tmp_path / "preds.csv.partial").read_bytes()
    assert written.startswith(partial) and len(partial) < len(written)
    scored_chunks = []

    def counting(ranker, frame):
        scored_chunks.append(len(frame))
        return predict_frame(ranker, frame)

    monkeypatch.setattr(rankers_base, "predict", counting)
    predict.run_with_args(["predict", *args, f"--output={output}"])  # the same command again
    assert output.read_bytes() == written
    assert sorted(os.listdir(tmp_path)) == ["preds.csv"]
    return scored_chunks


def _chunks(written):
    rows = written.count(b"\n") - 1
    return -(-rows // CHUNK)


@pytest.mark.parametrize("how", ["KILL", "INT"])
def test_sigkill_mid_file_then_rerun_continues_after_the_recorded_chunks(scored, tmp_path, monkeypatch, how):
    _, _, args, written = scored
    scored_chunks = _kill_then_rerun(args, written, tmp_path, monkeypatch, how)
    assert len(scored_chunks) == _chunks(written) - 2  # chunks 1-2 were recorded: not scored again


@pytest.mark.slow  # trains a tiny run first
def test_sigkill_mid_file_then_rerun_continues_with_a_cross_encoder(cross_encoder_scored, tmp_path, monkeypatch):
    args, written = cross_encoder_scored
    scored_chunks = _kill_then_rerun(args, written, tmp_path, monkeypatch)
    assert len(scored_chunks) == _chunks(written) - 2


def test_submission_ranks_the_streamed_scores(scored, tmp_path):
    _, _, args, written = scored
    output = tmp_path / "submission.csv"
    predict.run_with_args(["predict", *args, f"--output={output}", "--submission"])
    scores = pd.read_csv(io.BytesIO(written),
                         dtype={"product_id": str})
    expected = predict.submission_table(scores).to_csv(index=False)
    assert output.read_text() == expected
    assert sorted(os.listdir(tmp_path)) == ["submission.csv"]


def test_tasks_2_and_3_refuse_a_ranker_without_class_probabilities(scored, tmp_path):
    _, model_dir, args, _ = scored
    output = tmp_path / "task2.csv"
    result = run_module("trainers.predict", *[a for a in args if not a.startswith("--task")], "--task=2",
                        "--submission", f"--output={output}")
    assert_one_line_error(result, "trainers.predict", "--task=2 --submission", "the bm25 ranker",
                          f"--model_dir={model_dir}", code=2)
    assert not os.listdir(tmp_path)
