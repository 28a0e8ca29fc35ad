"""The "gelu" kernel, gelu_erf: Keras' exact GELU (values and gradient) computed in float32,
switched in by CrossEncoder."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from esci_tf.models import build_cross_encoder
from esci_tf.models.kernels import keras_internals
from esci_tf.models.kernels.gelu import gelu_erf
from tests.model_fixtures import TINY_BERT

TINY = dict(TINY_BERT, hidden_activation="gelu")  # exact GELU, as in MiniLM


def _value_and_gradient(fn, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y, tape.gradient(y, x)


def test_float32_matches_keras_exact_gelu_and_its_gradient():
    x = np.linspace(-8, 8, 1001).astype("float32")
    ours, ours_grad = _value_and_gradient(gelu_erf, x)
    keras_y, keras_grad = _value_and_gradient(lambda v: keras.activations.gelu(v, approximate=False), x)
    np.testing.assert_allclose(ours, keras_y, atol=2e-6)
    np.testing.assert_allclose(ours_grad, keras_grad, atol=2e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_in_and_out_within_one_rounding(dtype):
    x = np.linspace(-6, 6, 501).astype("float32")
    y, grad = _value_and_gradient(gelu_erf, tf.cast(x, dtype))
    assert y.dtype == dtype and grad.dtype == dtype
    exact, exact_grad = _value_and_gradient(gelu_erf, tf.cast(tf.cast(x, dtype), tf.float32))
    eps = 2.0 ** -8 if dtype == "bfloat16" else 2.0 ** -11
    np.testing.assert_allclose(tf.cast(y, tf.float32), exact, rtol=eps, atol=1e-6)
    np.testing.assert_allclose(tf.cast(grad, tf.float32), exact_grad, rtol=eps, atol=1e-6)


def test_cross_encoder_switches_the_feed_forward_gelu(tmp_path):
    model = build_cross_encoder("bert", backbone_config=TINY, dtype_policy="mixed_bfloat16")
    dense = [layer for layer in keras_internals.all_layers(model) if isinstance(layer, keras.layers.Dense)]
    assert sum(layer.activation is gelu_erf for layer in dense) == TINY["num_layers"]
    assert not any(layer.activation is keras.activations.gelu for layer in dense)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert (sum(getattr(l, "activation", None) is gelu_erf for l in keras_internals.all_layers(loaded))
            == TINY["num_layers"])
    batch = {"token_ids": np.ones((2, 8), "int32"), "segment_ids": np.zeros((2, 8), "int32"),
             "padding_mask": np.ones((2, 8), "int32")}
    np.testing.assert_allclose(model(batch), loaded(batch), atol=1e-6)


def test_gelu_kernel_off_keeps_keras_gelu_and_scores_agree():
    plain = build_cross_encoder("bert", backbone_config=TINY, kernels=("dropout", "attention", "dense", "layer_norm"))
    fast = build_cross_encoder("bert", backbone_config=TINY)
    fast.set_weights(plain.get_weights())
    assert any(getattr(l, "activation", None) is keras.activations.gelu for l in keras_internals.all_layers(plain))
    batch = {"token_ids": np.arange(16, dtype="int32").reshape(2, 8), "segment_ids": np.zeros((2, 8), "int32"),
             "padding_mask": np.ones((2, 8), "int32")}
    np.testing.assert_allclose(fast(batch), plain(batch), atol=1e-5)
