"""Keras gradient accumulation through TrainingModel: N micro-batches == one big batch."""

import keras
import numpy as np

from esci_tf.training.training_model import TrainingModel
from training_fixtures import build_tiny, make_batch, weights_of


def _train(batch_size, accumulation_steps, steps_per_execution=1):
    model = build_tiny()
    trainer = TrainingModel(model)
    trainer.compile(
        optimizer=keras.optimizers.SGD(0.5, gradient_accumulation_steps=accumulation_steps),
        steps_per_execution=steps_per_execution,
    )
    x, y = make_batch(8)
    trainer.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return weights_of(model)


def test_two_micro_batches_equal_one_big_batch():
    start = weights_of(build_tiny())
    # Both micro-batches also run inside one compiled loop (steps_per_execution=2).
    accumulated = _train(batch_size=4, accumulation_steps=2, steps_per_execution=2)
    big_batch = _train(batch_size=8, accumulation_steps=None)
    # The step really moved the weights (embedding rows included: sparse gradients).
    assert max(np.abs(a - s).max() for a, s in zip(accumulated, start)) > 1e-3
    for got, want in zip(accumulated, big_batch):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
