"""A bi-encoder fine-tune killed (SIGKILL, in a subprocess) while writing a checkpoint resumes from
its last checkpoint and ends with the weights an uninterrupted fine-tune reaches."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recipe_fixtures import REPO

pytestmark = pytest.mark.slow

TRAIN = """
import json, sys
from absl import logging
logging.set_verbosity(logging.INFO)
import numpy as np
from run_fixtures import loaded_synthetic_frame
from esci_tf.training.bi_encoder_training import BiEncoderSettings, train_bi_encoder_ranker
files, checkpoints, out = sys.argv[1:4]
frame = loaded_synthetic_frame(6, 2, files)
settings = BiEncoderSettings(epochs=2, list_size=4, lists_per_batch=2, precision="float32")
tiny = {"num_layers": 2, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}
ranker = train_bi_encoder_ranker(frame, "xlm_roberta", None, settings, backbone_config=tiny,
                                 checkpoint_dir=checkpoints if checkpoints != "-" else None, checkpoint_every=2)
np.save(out, np.concatenate([np.ravel(w) for w in ranker.model.get_weights()]))
"""


def _train(tmp_path, checkpoints, out, fault=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")]),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("ESCI_TF_FAULT", None)
    if fault:
        env["ESCI_TF_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / "files"), checkpoints, str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_a_killed_bi_encoder_fine_tune_resumes_to_the_uninterrupted_weights(tmp_path):
    whole = _train(tmp_path, "-", tmp_path / "whole.npy")
    assert whole.returncode == 0, whole.stderr[-3000:]
    checkpoints = tmp_path / "checkpoints"
    killed = _train(tmp_path, str(checkpoints), tmp_path / "killed.npy", fault="checkpoint_write@2")
    assert killed.returncode == -9 and not (tmp_path / "killed.npy").exists()
    saved = json.dumps(sorted(os.listdir(checkpoints)))
    assert "ckpt-2.index" in saved and "ckpt-4.index" not in saved  # the 2nd save died half-written
    resumed = _train(tmp_path, str(checkpoints), tmp_path / "resumed.npy")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step 2 of" in resumed.stderr
    np.testing.assert_allclose(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "whole.npy"), atol=1e-6)
