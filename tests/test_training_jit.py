"""FGM and AWP train steps compile with XLA (jit_compile=True) and still restore weights."""

import keras
import numpy as np
import pytest

from esci_tf.training.training_model import TrainingModel
from training_fixtures import build_tiny, make_batch, weights_of


@pytest.mark.parametrize("mode", ["fgm", "awp"])
def test_jit_compiled_adversarial_step(mode):
    model = build_tiny()
    before = weights_of(model)
    trainer = TrainingModel(model, adversarial=mode, awp_start_loss=10.0)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=True)
    assert trainer.jit_compile
    x, y = make_batch(4)
    logs = trainer.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and np.isfinite(logs["adv_loss"])
    assert logs["adv_loss"] != pytest.approx(logs["loss"], abs=1e-6)
    for got, want in zip(weights_of(model), before):
        np.testing.assert_array_equal(got, want)
