"""trainers.recipe on generated data with a tiny model, as the recipe tests run it: the data files
(conftest's recipe_files fixture), the flags, and a subprocess run that can be SIGKILLed when a path appears."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from esci_tf.data.reader import load_esci
from esci_tf.data.synthetic import write_esci_files
from esci_tf.rankers import load_ranker
from esci_tf.rankers.base import predict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = json.dumps({"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64})


def write_recipe_files(root):
    """(examples, products, unlabeled examples, unlabeled products) under root (a pathlib.Path):
    16 labeled and 6 unlabeled generated queries."""
    examples, products = write_esci_files(16, 0, str(root / "train"))
    unlabeled, unlabeled_products = write_esci_files(6, 7, str(root / "unlabeled"))
    pd.read_parquet(unlabeled).drop(columns=["esci_label"]).to_parquet(unlabeled)
    return examples, products, unlabeled, unlabeled_products


def recipe_args(files, output_dir, *extra):
    """The recipe's flags for `files`, writing to output_dir; `extra` flags come last (and win)."""
    examples, products, unlabeled, unlabeled_products = files
    return [f"--examples={examples}", f"--products={products}", "--task=all", "--backbone=xlm_roberta",
            f"--backbone_config={TINY}", "--max_length=24", "--batch_size=8", "--steps=4", "--learning_rate=1e-3",
            "--checkpoint_every_steps=2", "--num_shards=1", "--strategy=cpu", f"--output_dir={output_dir}",
            f"--pseudo_examples={unlabeled}", f"--pseudo_products={unlabeled_products}", "--pseudo_threshold=0.3",
            "--members=cross_encoder,bm25", "--bootstrap_samples=100", "--min_list_size=5",
            "--num_folds=2", *extra]  # 2 folds: every stage's logic, fewer models to train


def run_recipe(args, kill_when=None):
    """Run trainers.recipe in a subprocess and return its output; with kill_when (a path), SIGKILL it
    soon after the path appears and return None."""
    process = subprocess.Popen([sys.executable, "-m", "trainers.recipe", *args], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_when is None:
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, output[-3000:]
        return output
    deadline = time.time() + 900
    while not os.path.exists(kill_when) and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    return None


def final_scores(root, files):
    """The scores <root>/final gives the unlabeled pairs."""
    frame, _ = load_esci(files[2], files[3], task="all", require_labels=False)
    return predict(load_ranker(os.path.join(root, "final")), frame).scores
