"""set_random_seed: the global seeds of a run, without TensorFlow's kernel-cache clear.

keras.utils.set_random_seed sets Python's, NumPy's, Keras' and TensorFlow's global seeds, and
TensorFlow's part (tf.random.set_seed) also clears the eager kernel cache, so that stateful
random kernels created before restart their sequences. That clear drops every traced graph's
instantiation too: the next call of every traced graph is optimised again (the tokenizer's: 1.1-1.5
s, measured), which a process fine-tuning several models (the recipe, bench/quality, the tests)
pays at every run. This project creates no stateful random kernels
(its shuffles take explicit seeds, dropout and initializers use Keras' stateless ops), so it
sets the same seeds and keeps the cache. A kernel someone else created from the global seed
before continues its sequence instead of restarting it.

>>> import keras
>>> set_random_seed(3)
>>> first = keras.random.uniform([3]).numpy()
>>> set_random_seed(3)
>>> bool((keras.random.uniform([3]).numpy() == first).all())
True
"""

import random

import numpy as np
from keras.src.backend.common import global_state
from keras.src.random import seed_generator
from keras.src.utils import rng_utils
from tensorflow.python.eager import context


def set_random_seed(seed: int) -> None:
    """What keras.utils.set_random_seed(seed) sets, keeping TensorFlow's kernel cache (above)."""
    if not isinstance(seed, int):
        raise ValueError(f"the random seed must be an integer, not {seed!r}")
    # Keras' part (keras.utils.set_random_seed): the seed, and a global SeedGenerator made anew from it.
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    # tf.random.set_seed in eager mode (context.Context._set_global_seed) less its cache clear.
    eager = context.context()
    eager._seed = seed
    eager._rng = random.Random(seed)
