"""seeding.set_random_seed sets the seeds keras.utils.set_random_seed sets, and keeps TensorFlow's
kernel cache (keras.utils.set_random_seed clears it)."""

import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from esci_tf.training.seeding import set_random_seed


def _draws():
    initializer = keras.initializers.GlorotUniform()  # no seed: Keras' global SeedGenerator
    return (random.random(), np.random.rand(), keras.random.normal([4]).numpy(), initializer([3, 2]).numpy(),
            tf.compat.v1.get_seed(None))  # (global seed, the op seed TensorFlow derives from it)


def test_the_same_seeds_as_keras():
    keras.utils.set_random_seed(7)
    expected = _draws()
    set_random_seed(7)
    actual = _draws()
    for a, b in zip(actual, expected):
        np.testing.assert_array_equal(a, b)
    set_random_seed(8)
    assert not np.array_equal(_draws()[2], expected[2])


def test_the_kernel_cache_is_kept():
    # A stateful random kernel run eagerly is cached: it continues its sequence across
    # set_random_seed (the cache is kept) and restarts after keras.utils.set_random_seed (cleared).
    keras.utils.set_random_seed(1)
    first = tf.random.uniform([4], seed=2).numpy()
    set_random_seed(1)
    assert not np.array_equal(tf.random.uniform([4], seed=2).numpy(), first)
    keras.utils.set_random_seed(1)
    np.testing.assert_array_equal(tf.random.uniform([4], seed=2).numpy(), first)


def test_a_seed_that_is_not_an_integer_is_refused():
    with pytest.raises(ValueError, match="integer"):
        set_random_seed(1.5)
