"""Strategies by name, and a MirroredStrategy step on 2 logical CPUs == the one-device step.

The logical-CPU split must happen before TensorFlow initialises, so the multi-replica
checks run in a fresh Python process and cannot leak into other tests.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from esci_tf.training import strategy as strategy_lib
from esci_tf.training.tpu_machine import has_local_tpu

REPO = pathlib.Path(__file__).resolve().parents[1]

MIRRORED_SCRIPT = textwrap.dedent(
    """
    from esci_tf.training.strategy import get_strategy, split_cpu
    assert len(split_cpu(2)) == 2
    try:
        split_cpu(3)
        raise AssertionError("split_cpu after initialisation must fail")
    except RuntimeError as error:
        assert "before TensorFlow initialises" in str(error)

    import keras
    import numpy as np
    import tensorflow as tf
    from esci_tf.training.losses import classification_loss
    from esci_tf.training.training_model import TrainingModel
    from training_fixtures import build_tiny, make_batch, weights_of

    mirrored = get_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2, mirrored.num_replicas_in_sync

    # Per-replica losses sum to the global batch mean.
    logits = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    labels = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0, 1, 2, 3]]
    data = tf.data.Dataset.from_tensor_slices((labels, logits)).batch(8)
    batch = next(iter(mirrored.experimental_distribute_dataset(data)))
    loss = classification_loss()
    shares = mirrored.run(loss, args=batch)
    total = mirrored.reduce(tf.distribute.ReduceOp.SUM, shares, axis=None).numpy()
    np.testing.assert_allclose(total, loss(labels, logits).numpy(), rtol=1e-6)

    x, y = make_batch(8)
    start = build_tiny().get_weights()

    def train(strategy, mode):
        with strategy.scope():
            model = build_tiny()
            model.set_weights(start)
            trainer = TrainingModel(model, adversarial=mode, awp_start_loss=10.0)
            trainer.compile(optimizer=keras.optimizers.SGD(0.5))
        history = trainer.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return weights_of(model), history.history

    for mode in ("fgm", "awp"):
        one, one_logs = train(get_strategy("cpu"), mode)
        two, two_logs = train(mirrored, mode)
        assert max(abs(a - s).max() for a, s in zip(one, start)) > 1e-3
        for a, b in zip(one, two):
            np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
        for key in one_logs:
            np.testing.assert_allclose(one_logs[key], two_logs[key], rtol=1e-5)
        print(mode, "mirrored == single device")
    """
)


@pytest.mark.slow
def test_mirrored_two_cpus_step_equals_single_device():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["KERAS_BACKEND"] = "tensorflow"
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert "fgm mirrored == single device" in result.stdout
    assert "awp mirrored == single device" in result.stdout


def test_default_strategies():
    assert strategy_lib.get_strategy("cpu") is tf.distribute.get_strategy()
    assert strategy_lib.get_strategy("default").num_replicas_in_sync == 1
    if not tf.config.list_physical_devices("GPU") and not has_local_tpu():
        assert strategy_lib.get_strategy("auto") is tf.distribute.get_strategy()


def test_unknown_strategy_name_is_named():
    with pytest.raises(ValueError, match="--strategy must be one of"):
        strategy_lib.get_strategy("gpu_cluster")
    with pytest.raises(ValueError, match="num_devices"):
        strategy_lib.split_cpu(0)
