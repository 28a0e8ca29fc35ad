"""The "dropout" kernel, FastDropout: Keras Dropout's distribution from 16-bit draws, switched in by
CrossEncoder."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from esci_tf.models import build_cross_encoder
from esci_tf.models.kernels import install, keras_internals
from esci_tf.models.kernels.dropout import FastDropout, drop_threshold, fast_dropout
from tests.model_fixtures import TINY_BERT as TINY


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drop_share_and_expectation(rate, dtype):
    x = tf.ones([400, 500], dtype)
    out = fast_dropout(x, rate, seed=tf.constant([3, 4]))
    assert out.dtype == x.dtype
    values = np.asarray(tf.cast(out, tf.float32))
    dropped = (values == 0).mean()
    assert abs(dropped - rate) < 0.005  # 200,000 draws: 5 sigma is ~0.003 at rate 0.5
    assert abs(values.mean() - 1.0) < 0.01
    kept = values[values != 0]
    np.testing.assert_allclose(kept, 65536 / (65536 - drop_threshold(rate)), rtol=1e-2)


def test_seed_decides_the_mask_and_odd_sizes_work():
    x = tf.ones([7, 3])
    a, b = fast_dropout(x, 0.5, [1, 2]), fast_dropout(x, 0.5, [1, 2])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, fast_dropout(x, 0.5, [1, 3]))


def test_noise_shape_broadcasts_one_mask():
    layer = FastDropout(0.5, noise_shape=(None, 1, 6), seed=0)
    out = np.asarray(layer(np.ones((4, 5, 6), "float32"), training=True))
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1, :], out.shape))


def test_inference_and_rate_zero_are_identity():
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    np.testing.assert_array_equal(FastDropout(0.3)(x, training=False), x)
    np.testing.assert_array_equal(fast_dropout(tf.constant(x), 0.0, [1, 2]), x)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        drop_threshold(1.0)


def test_cross_encoder_switches_every_dropout_and_keeps_it_after_reload(tmp_path):
    model = build_cross_encoder("bert", backbone_config=TINY, multi_sample_dropout=3, cross_attention=True)
    layers = keras_internals.all_layers(model)
    assert not any(type(layer) is keras.layers.Dropout for layer in layers)
    switched = [layer for layer in layers if isinstance(layer, FastDropout)]
    assert len(switched) >= 2 * TINY["num_layers"] + 3  # attention + feed-forward per block, head
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert "dropout" in loaded.get_config()["kernels"]
    assert sum(isinstance(layer, FastDropout) for layer in keras_internals.all_layers(loaded)) == len(switched)
    batch = {"token_ids": np.ones((2, 8), "int32"), "segment_ids": np.zeros((2, 8), "int32"),
             "padding_mask": np.ones((2, 8), "int32")}
    np.testing.assert_allclose(model(batch), loaded(batch), atol=1e-6)


def test_dropout_kernel_off_keeps_keras_dropout():
    model = build_cross_encoder("bert", backbone_config=TINY, kernels=("gelu", "attention", "dense", "layer_norm"))
    layers = keras_internals.all_layers(model)
    assert not any(isinstance(layer, FastDropout) for layer in layers)
    assert any(type(layer) is keras.layers.Dropout for layer in layers)
    assert install(model, ["dropout"])["dropout"] > 0
    assert not any(type(l) is keras.layers.Dropout for l in keras_internals.all_layers(model))
